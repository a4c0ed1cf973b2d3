using System.Text.Json.Nodes;

namespace FakeKubeApi;

/// <summary>
/// Field paths for server-side apply bookkeeping. Maps are granular (each key is its own field, as
/// in the real API's structured merge); lists and scalars are atomic leaves (the real API merges
/// some lists by key, e.g. containers by name; the fake treats every list as one value).
/// </summary>
public static class Fields
{
    private static readonly HashSet<string> ServerOwnedMetadata =
        ["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "deletionTimestamp", "selfLink"];

    /// <summary>The leaf fields of an applied or patched object, path → value.</summary>
    public static Dictionary<string, JsonNode?> Leaves(JsonObject obj, bool ignoreStatus)
    {
        var result = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var (key, value) in obj)
        {
            if (key is "apiVersion" or "kind" || (ignoreStatus && key == "status"))
            {
                continue;
            }

            if (key == "metadata" && value is JsonObject meta)
            {
                foreach (var (mk, mv) in meta)
                {
                    if (!ServerOwnedMetadata.Contains(mk))
                    {
                        Collect($"/metadata/{Escape(mk)}", mv, result);
                    }
                }

                continue;
            }

            Collect("/" + Escape(key), value, result);
        }

        return result;
    }

    private static void Collect(string path, JsonNode? node, Dictionary<string, JsonNode?> result)
    {
        if (node is JsonObject o && o.Count > 0)
        {
            foreach (var (k, v) in o)
            {
                Collect($"{path}/{Escape(k)}", v, result);
            }
        }
        else
        {
            result[path] = node;
        }
    }

    public static string Escape(string key) => key.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    private static string Unescape(string key) => key.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);

    public static string[] Split(string path) => path.TrimStart('/').Split('/').Select(Unescape).ToArray();

    /// <summary>The live value at a path, or (false, null) when absent.</summary>
    public static (bool Found, JsonNode? Value) Get(JsonObject obj, string path)
    {
        JsonNode? cur = obj;
        foreach (var part in Split(path))
        {
            if (cur is not JsonObject o || !o.TryGetPropertyValue(part, out cur))
            {
                return (false, null);
            }
        }

        return (true, cur);
    }

    public static void Set(JsonObject obj, string path, JsonNode? value)
    {
        var parts = Split(path);
        var cur = obj;
        foreach (var part in parts[..^1])
        {
            if (cur[part] is not JsonObject next)
            {
                next = [];
                cur[part] = next;
            }

            cur = next;
        }

        cur[parts[^1]] = value?.DeepClone();
    }

    /// <summary>Removes the field and then any map left empty by it.</summary>
    public static void Remove(JsonObject obj, string path)
    {
        var parts = Split(path);
        var chain = new List<JsonObject> { obj };
        var cur = obj;
        foreach (var part in parts[..^1])
        {
            if (cur[part] is not JsonObject next)
            {
                return;
            }

            chain.Add(next);
            cur = next;
        }

        cur.Remove(parts[^1]);
        for (var i = chain.Count - 1; i > 1; i--)
        {
            if (chain[i].Count == 0)
            {
                chain[i - 1].Remove(parts[i - 1]);
            }
        }
    }

    public static bool Same(JsonNode? a, JsonNode? b) => JsonNode.DeepEquals(a, b);

    /// <summary>RFC 7386 JSON merge patch.</summary>
    public static JsonNode? MergePatch(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject p)
        {
            return patch?.DeepClone();
        }

        var result = target is JsonObject t ? (JsonObject)t.DeepClone() : [];
        foreach (var (k, v) in p)
        {
            if (v is null)
            {
                result.Remove(k);
            }
            else
            {
                result[k] = MergePatch(result[k], v);
            }
        }

        return result;
    }

    /// <summary>The fields a merge patch sets (non-null leaves) and removes (null values).</summary>
    public static (List<string> Set, List<string> Removed) PatchPaths(JsonObject patch)
    {
        var set = new List<string>();
        var removed = new List<string>();
        void Walk(string path, JsonNode? node)
        {
            if (node is null)
            {
                removed.Add(path);
            }
            else if (node is JsonObject o && o.Count > 0)
            {
                foreach (var (k, v) in o)
                {
                    Walk($"{path}/{Escape(k)}", v);
                }
            }
            else
            {
                set.Add(path);
            }
        }

        foreach (var (k, v) in patch)
        {
            if (k is "apiVersion" or "kind")
            {
                continue;
            }

            if (k == "metadata" && v is JsonObject meta)
            {
                foreach (var (mk, mv) in meta)
                {
                    if (!ServerOwnedMetadata.Contains(mk))
                    {
                        Walk($"/metadata/{Escape(mk)}", mv);
                    }
                }

                continue;
            }

            Walk("/" + Escape(k), v);
        }

        return (set, removed);
    }

    /// <summary>The managedFields fieldsV1 form of owned paths: {"f:spec":{"f:replicas":{}}}.</summary>
    public static JsonObject ToFieldsV1(IEnumerable<string> paths)
    {
        var root = new JsonObject();
        foreach (var path in paths.Order(StringComparer.Ordinal))
        {
            var cur = root;
            foreach (var part in Split(path))
            {
                if (cur["f:" + part] is not JsonObject next)
                {
                    next = [];
                    cur["f:" + part] = next;
                }

                cur = next;
            }
        }

        return root;
    }

    /// <summary>The kubectl-style field name: /spec/replicas → .spec.replicas.</summary>
    public static string Display(string path) => "." + string.Join('.', Split(path));
}
