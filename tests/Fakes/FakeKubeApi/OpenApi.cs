using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace FakeKubeApi;

/// <summary>
/// The OpenAPI v3 documents kubectl reads before it sends a write (/openapi/v3 and one document per
/// group version, as served by the apiserver since 1.27). kubectl's validation
/// (k8s.io/kubectl/pkg/cmd/util/factory_client_access.go, Validator) asks only whether the PATCH
/// operation of the object's kind declares the <c>fieldValidation</c> query parameter
/// (k8s.io/cli-runtime/pkg/resource/query_param_verifier_v3.go); when it does, kubectl leaves
/// validation to the server and sends <c>fieldValidation=Strict</c>. So the documents carry the
/// paths, their kinds (x-kubernetes-group-version-kind) and that parameter, but no schemas.
/// </summary>
public static class OpenApi
{
    public static string PathOf(ResourceDef def) => def.Group.Length == 0 ? $"api/{def.Version}" : $"apis/{def.Group}/{def.Version}";

    public static JsonObject Index(IEnumerable<ResourceDef> defs)
    {
        var paths = new JsonObject();
        foreach (var gv in defs.GroupBy(PathOf))
        {
            paths[gv.Key] = new JsonObject { ["serverRelativeURL"] = $"/openapi/v3/{gv.Key}?hash={Hash(Document(gv))}" };
        }

        return new JsonObject { ["paths"] = paths };
    }

    private static string Hash(JsonObject doc) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(doc.ToJsonString())));

    public static JsonObject Document(IEnumerable<ResourceDef> defs)
    {
        var paths = new JsonObject();
        foreach (var d in defs)
        {
            var prefix = "/" + PathOf(d) + (d.Namespaced ? "/namespaces/{namespace}" : string.Empty);
            var gvk = new JsonObject { ["group"] = d.Group, ["version"] = d.Version, ["kind"] = d.Kind };
            JsonObject Op(string id) => new()
            {
                ["operationId"] = id + d.Kind,
                ["x-kubernetes-group-version-kind"] = gvk.DeepClone(),
                ["parameters"] = new JsonArray(
                    new JsonObject { ["name"] = "fieldManager", ["in"] = "query", ["schema"] = new JsonObject { ["type"] = "string", ["uniqueItems"] = true } },
                    new JsonObject { ["name"] = "fieldValidation", ["in"] = "query", ["schema"] = new JsonObject { ["type"] = "string", ["uniqueItems"] = true } },
                    new JsonObject { ["name"] = "force", ["in"] = "query", ["schema"] = new JsonObject { ["type"] = "boolean", ["uniqueItems"] = true } }),
                ["responses"] = new JsonObject { ["200"] = new JsonObject { ["description"] = "OK" } },
            };
            paths[$"{prefix}/{d.Resource}/{{name}}"] = new JsonObject { ["get"] = Op("read"), ["patch"] = Op("patch"), ["put"] = Op("replace"), ["delete"] = Op("delete") };
            paths[$"{prefix}/{d.Resource}"] = new JsonObject { ["get"] = Op("list"), ["post"] = Op("create") };
        }

        return new JsonObject
        {
            ["openapi"] = "3.0.0",
            ["info"] = new JsonObject { ["title"] = "Kubernetes", ["version"] = "v1.31.0-fake" },
            ["paths"] = paths,
            ["components"] = new JsonObject { ["schemas"] = new JsonObject() },
        };
    }
}
