using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Kubernetes.Tests;

/// <summary>The fake API server keeps the real API's rules that the sub-module relies on.</summary>
[Collection("kube")]
public sealed class FakeApiTests(KubeFixture fx) : IDisposable
{
    private readonly HttpClient _http = new();
    private readonly string _ns = Unique.Name("fake");

    private async Task<(HttpStatusCode Code, JsonObject Body)> Send(HttpMethod method, string path, string? body = null, string type = "application/json", bool auth = true)
    {
        using var req = new HttpRequestMessage(method, fx.Api.Url + path);
        if (auth)
        {
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", fx.Api.Token);
        }

        if (body is not null)
        {
            req.Content = new StringContent(body, Encoding.UTF8);
            req.Content.Headers.ContentType = new MediaTypeHeaderValue(type);
        }

        using var resp = await _http.SendAsync(req);
        return (resp.StatusCode, JsonNode.Parse(await resp.Content.ReadAsStringAsync())!.AsObject());
    }

    private Task<(HttpStatusCode Code, JsonObject Body)> Apply(string name, string labels, string data, string manager = "tester", string? ns = null) =>
        Send(HttpMethod.Patch, $"/api/v1/namespaces/{ns ?? _ns}/configmaps/{name}?fieldManager={manager}",
            "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"" + name + "\",\"labels\":{" + labels + "}},\"data\":{" + data + "}}", "application/apply-patch+yaml");

    [Fact]
    public async Task Objects_in_a_namespace_that_does_not_exist_are_refused_and_requests_need_the_token()
    {
        var (code, body) = await Apply("c", string.Empty, string.Empty);
        Assert.Equal(HttpStatusCode.NotFound, code);
        Assert.Equal($"namespaces \"{_ns}\" not found", body["message"]!.GetValue<string>());

        Assert.Equal(HttpStatusCode.Unauthorized, (await Send(HttpMethod.Get, "/api/v1/namespaces", auth: false)).Code);
        Assert.Equal(HttpStatusCode.BadRequest, (await Send(HttpMethod.Patch, "/api/v1/namespaces/default/configmaps/x", "{}", "application/apply-patch+yaml")).Code);
    }

    [Fact]
    public async Task Label_selectors_and_apply_behave_like_the_real_api()
    {
        Assert.Equal(HttpStatusCode.Created, (await Send(HttpMethod.Post, "/api/v1/namespaces", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"" + _ns + "\"}}")).Code);
        Assert.Equal(HttpStatusCode.Conflict, (await Send(HttpMethod.Post, "/api/v1/namespaces", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"" + _ns + "\"}}")).Code);
        await Apply("a", "\"tier\":\"web\",\"app\":\"x\"", "\"k\":\"1\"");
        await Apply("b", "\"tier\":\"db\"", "\"k\":\"1\"");
        await Apply("c", string.Empty, "\"k\":\"1\"");

        async Task<string[]> Names(string selector)
        {
            var (_, list) = await Send(HttpMethod.Get, $"/api/v1/namespaces/{_ns}/configmaps?labelSelector={Uri.EscapeDataString(selector)}");
            return list["items"]!.AsArray().Select(i => i!["metadata"]!["name"]!.GetValue<string>()).ToArray();
        }

        Assert.Equal(["a"], await Names("tier=web"));
        Assert.Equal(["b", "c"], await Names("tier!=web"));
        Assert.Equal(["a", "b"], await Names("tier in (web,db)"));
        Assert.Equal(["c"], await Names("!tier"));
        Assert.Equal(["a"], await Names("tier,app=x"));

        var again = (await Apply("a", "\"tier\":\"web\"", "\"k\":\"2\"")).Body;
        Assert.Null(again["metadata"]!["labels"]!["app"]); // no longer applied by its only manager
        Assert.Equal("2", again["data"]!["k"]!.GetValue<string>());
        fx.Api.DeleteNamespace(_ns);
        Assert.Empty(fx.Api.List("v1", "ConfigMap", _ns));
    }

    /// <summary>
    /// A container that exits after 1 s, as the kubelet reports it (API reference, Pod v1, ContainerStatus; "Pod
    /// Lifecycle", Container restarts): Running and Ready with restartCount 0, then restarted at once (restartCount 1,
    /// lastState.terminated exit code 1, reason Error), then held in CrashLoopBackOff for 10 s (not ready, the
    /// Deployment not available) with the restart count unchanged.
    /// </summary>
    [Fact]
    public async Task A_container_that_keeps_exiting_shows_restarts_and_CrashLoopBackOff_as_the_kubelet_reports_them()
    {
        const string image = "example.test/exits-after-1s:1";
        fx.Api.ExitingImages[image] = TimeSpan.FromSeconds(1);
        try
        {
            Assert.Equal(HttpStatusCode.Created, (await Send(HttpMethod.Post, "/api/v1/namespaces", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"" + _ns + "\"}}")).Code);
            var deployment = "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"loop\"},\"spec\":{\"replicas\":1,\"selector\":{\"matchLabels\":{\"app\":\"loop\"}},"
                + "\"template\":{\"metadata\":{\"labels\":{\"app\":\"loop\"}},\"spec\":{\"containers\":[{\"name\":\"main\",\"image\":\"" + image + "\"}]}}}}";
            Assert.Equal(HttpStatusCode.Created, (await Send(HttpMethod.Post, $"/apis/apps/v1/namespaces/{_ns}/deployments", deployment)).Code);

            async Task<JsonObject> Container()
            {
                var (_, list) = await Send(HttpMethod.Get, $"/api/v1/namespaces/{_ns}/pods?labelSelector=app%3Dloop");
                return list["items"]![0]!["status"]!["containerStatuses"]![0]!.AsObject();
            }

            async Task<JsonObject> Until(Func<JsonObject, bool> condition, string what)
            {
                for (var i = 0; i < 300; i++)
                {
                    var c = await Container();
                    if (condition(c))
                    {
                        return c;
                    }

                    await Task.Delay(50);
                }

                throw new Xunit.Sdk.XunitException($"the container never {what}: {await Container()}");
            }

            var first = await Container();
            Assert.Equal(0, first["restartCount"]!.GetValue<long>());
            Assert.NotNull(first["state"]!["running"]!["startedAt"]);
            Assert.True(first["ready"]!.GetValue<bool>());

            var restarted = await Until(c => c["restartCount"]!.GetValue<long>() == 1, "restarted");
            Assert.NotNull(restarted["state"]!["running"]);
            Assert.Equal(1, restarted["lastState"]!["terminated"]!["exitCode"]!.GetValue<int>());
            Assert.Equal("Error", restarted["lastState"]!["terminated"]!["reason"]!.GetValue<string>());

            var backOff = await Until(c => c["state"]!["waiting"] is not null, "backed off");
            Assert.Equal("CrashLoopBackOff", backOff["state"]!["waiting"]!["reason"]!.GetValue<string>());
            Assert.StartsWith("back-off 10s restarting failed container=main", backOff["state"]!["waiting"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.Equal(1, backOff["restartCount"]!.GetValue<long>());
            Assert.False(backOff["ready"]!.GetValue<bool>());
            var status = fx.Api.Get("apps/v1", "Deployment", _ns, "loop")!["status"]!;
            Assert.Null(status["availableReplicas"]);
            Assert.Equal(1, status["unavailableReplicas"]!.GetValue<long>());
        }
        finally
        {
            fx.Api.ExitingImages.Remove(image);
        }
    }

    public void Dispose()
    {
        fx.Api.DeleteNamespace(_ns);
        _http.Dispose();
    }
}
