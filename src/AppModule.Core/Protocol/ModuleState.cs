namespace AppModule.Core.Protocol;

/// <summary>The states of the Mender Update Module protocol v3 (plus the 4.x additions).</summary>
public enum ModuleState
{
    Unknown,
    Download,
    DownloadWithFileSizes,
    ProvidePayloadFileSizes,
    SupportsRollback,
    NeedsArtifactReboot,
    ArtifactInstall,
    ArtifactReboot,
    ArtifactVerifyReboot,
    ArtifactCommit,
    ArtifactRollback,
    ArtifactRollbackReboot,
    ArtifactVerifyRollbackReboot,
    ArtifactFailure,
    Cleanup,
}

/// <summary>How each state is handled, independent of any I/O.</summary>
public static class Protocol
{
    public static ModuleState Parse(string state) =>
        Enum.TryParse<ModuleState>(state, ignoreCase: false, out var s) && s != ModuleState.Unknown && Enum.IsDefined(s) && s.ToString() == state
            ? s
            : ModuleState.Unknown;

    /// <summary>
    /// The exact stdout answer for query states, or null for action states. The client strips one
    /// trailing newline (3.4) or takes the first line (4.x), so answers are written as "<c>Yes\n</c>".
    /// Rollback is always supported: the undo happens in ArtifactRollback, so the client never records
    /// <c>&lt;name&gt;_INCONSISTENT</c>, whatever order it asks in.
    /// </summary>
    public static string? QueryAnswer(ModuleState state) => state switch
    {
        ModuleState.SupportsRollback => "Yes",
        ModuleState.NeedsArtifactReboot => "No",
        ModuleState.ProvidePayloadFileSizes => "No",
        _ => null,
    };

    /// <summary>States that print nothing and succeed (reboot-related ones are never needed: we answer NeedsArtifactReboot No).</summary>
    public static bool IsNoOp(ModuleState state) => state is ModuleState.Unknown or ModuleState.ArtifactReboot or ModuleState.ArtifactVerifyReboot
        or ModuleState.ArtifactRollbackReboot or ModuleState.ArtifactVerifyRollbackReboot;
}
