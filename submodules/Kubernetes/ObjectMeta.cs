using System.Text.Json.Nodes;

namespace Kubernetes;

/// <summary>Typed accessors of a live object's metadata.</summary>
public static class ObjectMeta
{
    public static string Name(this JsonObject live)
    {
        ArgumentNullException.ThrowIfNull(live);
        return live["metadata"]!["name"]!.GetValue<string>();
    }

    public static string? Namespace(this JsonObject live)
    {
        ArgumentNullException.ThrowIfNull(live);
        return live["metadata"]?["namespace"]?.GetValue<string>();
    }

    /// <summary>True when another object controls this one (pods of a ReplicaSet, ...): its owner is what keeps it.</summary>
    public static bool IsControlled(this JsonObject live)
    {
        ArgumentNullException.ThrowIfNull(live);
        return live["metadata"]?["ownerReferences"] is JsonArray owners && owners.Any(o => o?["controller"]?.GetValue<bool>() == true);
    }

    /// <summary>True when the object is being deleted (deletionTimestamp set).</summary>
    public static bool IsDeleting(this JsonObject live)
    {
        ArgumentNullException.ThrowIfNull(live);
        return live["metadata"]?["deletionTimestamp"] is not null;
    }
}
