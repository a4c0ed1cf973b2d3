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

    public void Dispose()
    {
        fx.Api.DeleteNamespace(_ns);
        _http.Dispose();
    }
}
