using System.Text;
using System.Text.Json.Nodes;
using AppModule.Runtime;
using YamlDotNet.RepresentationModel;

namespace Kubernetes;

/// <summary>An exec credential plugin of a kubeconfig user (client.authentication.k8s.io): a program that prints a token or a client certificate.</summary>
public sealed record KubeExec(string Command, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string?> Environment, string ApiVersion);

/// <summary>
/// Where the API server is and how to prove who we are, as kubectl reads it from a kubeconfig (cluster, user and
/// namespace of one context) or from a pod's service account. Certificates are PEM text; files are read when loaded,
/// except the token file, which is read again as it rotates (service-account tokens do).
/// </summary>
public sealed record KubeConnection(string Server, string Source)
{
    public string? Namespace { get; init; }

    /// <summary>The CA certificate(s) the server's certificate must chain to; null trusts the system's roots.</summary>
    public string? CertificateAuthorityPem { get; init; }

    public bool InsecureSkipTlsVerify { get; init; }

    /// <summary>The name the server's certificate is checked against instead of the server URL's host.</summary>
    public string? TlsServerName { get; init; }

    public string? ClientCertificatePem { get; init; }

    public string? ClientKeyPem { get; init; }

    public string? Token { get; init; }

    public string? TokenFile { get; init; }

    public string? Username { get; init; }

    public string? Password { get; init; }

    public KubeExec? Exec { get; init; }
}

/// <summary>
/// Reads a kubeconfig file (the parts of clusters, users and contexts a device needs: server, CA, TLS settings,
/// client certificate and key, token, token file, basic auth, exec plugins) and the in-cluster service account.
/// Paths in a kubeconfig are relative to its directory, as kubectl resolves them.
/// </summary>
public static class KubeConfig
{
    /// <summary>The service account's files in a pod.</summary>
    public const string ServiceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount";

    /// <summary>The kubeconfig's current context, or <paramref name="context"/>; a problem throws <see cref="ConfigException"/> naming it.</summary>
    public static KubeConnection Load(string path, string? context)
    {
        ArgumentNullException.ThrowIfNull(path);
        JsonObject root;
        try
        {
            var yaml = new YamlStream();
            using (var reader = new StringReader(File.ReadAllText(path)))
            {
                yaml.Load(reader);
            }

            root = yaml.Documents.Count > 0 ? Manifests.ToJson(yaml.Documents[0].RootNode, path) as JsonObject ?? [] : [];
        }
        catch (Exception e) when (e is YamlDotNet.Core.YamlException or IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"cannot read it: {e.Message}");
        }

        var dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
        var contextName = context ?? Str(root, "current-context")
            ?? throw new ConfigException("it names no current-context; set current-context in it or context = \"...\" in the sub-module's config");
        var ctx = Named(root, "contexts", "context", contextName)
            ?? throw new ConfigException($"it has no context \"{contextName}\"");
        var clusterName = Str(ctx, "cluster") ?? throw new ConfigException($"context \"{contextName}\" names no cluster");
        var cluster = Named(root, "clusters", "cluster", clusterName)
            ?? throw new ConfigException($"it has no cluster \"{clusterName}\" (named by context \"{contextName}\")");
        var server = Str(cluster, "server") ?? throw new ConfigException($"cluster \"{clusterName}\" has no server");
        if (!Uri.TryCreate(server, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
        {
            throw new ConfigException($"cluster \"{clusterName}\": server \"{server}\" is not an http(s) URL");
        }

        var userName = Str(ctx, "user");
        var user = userName is null ? [] : Named(root, "users", "user", userName)
            ?? throw new ConfigException($"it has no user \"{userName}\" (named by context \"{contextName}\")");
        if (user["auth-provider"] is JsonObject provider)
        {
            throw new ConfigException($"user \"{userName}\" uses the auth-provider \"{Str(provider, "name")}\", which kubectl itself no longer supports; use an exec plugin, a token or a client certificate");
        }

        return new KubeConnection(server.TrimEnd('/'), path)
        {
            Namespace = Str(ctx, "namespace"),
            CertificateAuthorityPem = Pem(cluster, "certificate-authority", dir),
            InsecureSkipTlsVerify = cluster["insecure-skip-tls-verify"] is JsonValue v && v.TryGetValue<bool>(out var skip) && skip,
            TlsServerName = Str(cluster, "tls-server-name"),
            ClientCertificatePem = Pem(user, "client-certificate", dir),
            ClientKeyPem = Pem(user, "client-key", dir),
            Token = Str(user, "token"),
            TokenFile = Str(user, "tokenFile") is { } tf ? Path.Combine(dir, tf) : null,
            Username = Str(user, "username"),
            Password = Str(user, "password"),
            Exec = user["exec"] is JsonObject exec ? Exec(exec, dir) : null,
        };
    }

    /// <summary>True in a pod: the API server's service variables and the service account token are there.</summary>
    public static bool IsInCluster(IReadOnlyDictionary<string, string?> env)
    {
        ArgumentNullException.ThrowIfNull(env);
        return !string.IsNullOrEmpty(Var(env, "KUBERNETES_SERVICE_HOST")) && !string.IsNullOrEmpty(Var(env, "KUBERNETES_SERVICE_PORT"))
            && File.Exists(Path.Combine(ServiceAccountDirectory, "token"));
    }

    /// <summary>The pod's service account: its token (read again as it rotates), the cluster's CA and the pod's namespace.</summary>
    public static KubeConnection InCluster(IReadOnlyDictionary<string, string?> env)
    {
        ArgumentNullException.ThrowIfNull(env);
        var host = Var(env, "KUBERNETES_SERVICE_HOST")!;
        var server = $"https://{(host.Contains(':', StringComparison.Ordinal) ? $"[{host}]" : host)}:{Var(env, "KUBERNETES_SERVICE_PORT")}";
        var ca = Path.Combine(ServiceAccountDirectory, "ca.crt");
        var ns = Path.Combine(ServiceAccountDirectory, "namespace");
        return new KubeConnection(server, "in-cluster service account")
        {
            CertificateAuthorityPem = File.Exists(ca) ? File.ReadAllText(ca) : null,
            TokenFile = Path.Combine(ServiceAccountDirectory, "token"),
            Namespace = File.Exists(ns) ? File.ReadAllText(ns).Trim() : null,
        };
    }

    private static string? Var(IReadOnlyDictionary<string, string?> env, string name) =>
        env.TryGetValue(name, out var v) ? v : Environment.GetEnvironmentVariable(name);

    private static KubeExec Exec(JsonObject exec, string dir)
    {
        var command = Str(exec, "command") ?? throw new ConfigException("the user's exec plugin names no command");
        var args = (exec["args"] as JsonArray ?? []).Select(a => a?.ToString() ?? string.Empty).ToList();
        var env = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var e in (exec["env"] as JsonArray ?? []).OfType<JsonObject>())
        {
            if (Str(e, "name") is { } name)
            {
                env[name] = Str(e, "value") ?? string.Empty;
            }
        }

        // kubectl: a command with a path separator is relative to the kubeconfig; a bare name is looked up in PATH.
        if (command.Contains('/', StringComparison.Ordinal))
        {
            command = Path.Combine(dir, command);
        }

        return new KubeExec(command, args, env, Str(exec, "apiVersion") ?? "client.authentication.k8s.io/v1");
    }

    /// <summary>"name-data" (base64 of the PEM) or "name" (a file, relative to the kubeconfig's directory).</summary>
    private static string? Pem(JsonObject section, string name, string dir)
    {
        if (Str(section, name + "-data") is { } data)
        {
            try
            {
                return Encoding.UTF8.GetString(Convert.FromBase64String(data));
            }
            catch (FormatException)
            {
                throw new ConfigException($"{name}-data is not base64");
            }
        }

        if (Str(section, name) is not { } file)
        {
            return null;
        }

        var full = Path.Combine(dir, file);
        try
        {
            return File.ReadAllText(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{name} {full} cannot be read: {e.Message}");
        }
    }

    /// <summary>The "inner" object of the list entry named <paramref name="name"/> (clusters[].cluster, users[].user, contexts[].context).</summary>
    private static JsonObject? Named(JsonObject root, string list, string inner, string name) =>
        (root[list] as JsonArray ?? []).OfType<JsonObject>().Where(e => Str(e, "name") == name).Select(e => e[inner] as JsonObject ?? []).FirstOrDefault();

    private static string? Str(JsonObject o, string key) =>
        o[key] is JsonValue v && v.ToString() is { Length: > 0 } s ? s : null;
}
