using System.Net;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>The API server answered with an error status.</summary>
public sealed class KubeApiException(HttpStatusCode status, string reason, string message) : SubModuleFailure(message)
{
    public HttpStatusCode Status { get; } = status;

    public string Reason { get; } = reason;
}
