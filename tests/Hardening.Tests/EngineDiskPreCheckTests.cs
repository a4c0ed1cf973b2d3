using System.Globalization;
using System.Text.RegularExpressions;
using Hardening.Tests.Corpus;
using Xunit.Abstractions;

namespace Hardening.Tests;

/// <summary>
/// The engine-disk pre-check, through the real Mender client on a private dockerd whose data root is
/// a small tmpfs: an artifact whose new layers (and the archive Docker unpacks while loading) do not
/// fit is refused before anything stops, naming the numbers; one of the same size whose big layer the
/// engine already has fits and installs.
/// </summary>
public sealed partial class EngineDiskPreCheckTests(ITestOutputHelper output) : IDisposable
{
    private const int LayerMiB = 24;
    private readonly List<string> _tags = [];

    private static void RequireComponents()
    {
        MenderClient.Require();
        DockerEngine.RequireImages();
    }

    [SkippableFact]
    public void An_artifact_whose_layers_do_not_fit_is_refused_before_STOP_and_one_whose_big_layer_is_present_installs()
    {
        RequireComponents();
        // 72 MiB: v1 (2 MiB) and an image with a 24 MiB layer leave about 43 MiB free. An artifact of
        // web 2.0 plus a new 24 MiB layer needs 24 MiB for the layer, about 26 MiB for the archive the
        // engine unpacks while loading, and the 4 MiB margin: 54 MiB, refused. The same-sized artifact
        // whose 24 MiB layer the engine already has needs about 30 MiB: it installs.
        using var engine = new PrivateDockerd(dataRootMiB: 72);
        using var rig = new DeviceRig(engine: engine, appConfig: "engine_disk_margin_mib = 4");
        rig.InstallV1();

        var present = Build($"{rig.App}/web:present", "appmodule/web:2.0", ("pad", LayerMiB));
        engine.CopyImages(present);
        var fits = Build($"{rig.App}/web:fits", present, ("small", 0));
        var tooBig = Build($"{rig.App}/web:toobig", "appmodule/web:2.0", ("pad", LayerMiB));
        var fitsImage = Save(fits, rig);
        var tooBigImage = Save(tooBig, rig);

        var container = rig.WebContainer();
        var startedAt = StartedAt(rig, container);
        var tooBigArtifact = rig.ArtifactFor("v2-toobig", tooBigImage);
        var fitsArtifact = rig.ArtifactFor("v2-fits", fitsImage);

        // `app plan` first, on the same engine: it says which would be refused, and changes nothing.
        var tooBigPlan = rig.Plan(tooBigArtifact);
        output.WriteLine($"plan of the artifact that does not fit: {tooBigPlan}");
        Assert.True(tooBigPlan.ExitCode == 1, $"the plan of an artifact that does not fit: {tooBigPlan}");
        var fitsPlan = rig.Plan(fitsArtifact);
        Assert.True(fitsPlan.ExitCode == 0, $"the plan of an artifact that fits: {fitsPlan}");
        Assert.Equal(container, rig.WebContainer());
        Assert.Null(rig.ImageId(tooBig));

        var refused = rig.Client.Install(tooBigArtifact);
        var log = refused.Stdout + refused.Stderr;
        output.WriteLine($"install that does not fit: {refused}");
        Assert.NotEqual(0, refused.ExitCode);

        // The deployment log names the numbers: what the images need, the margin, what is free, where.
        var m = NeedsRegex().Match(log);
        Assert.True(m.Success, $"the refusal does not name the numbers:\n{log}");
        var needed = long.Parse(m.Groups["needed"].Value, CultureInfo.InvariantCulture);
        var free = long.Parse(m.Groups["free"].Value, CultureInfo.InvariantCulture);
        Assert.True(needed + (4L << 20) > free, $"refused although {needed} bytes + 4 MiB margin fit in {free} bytes:\n{log}");
        Assert.True(needed >= 2L * LayerMiB << 20, $"the need ({needed} bytes) leaves out the new {LayerMiB} MiB layer or the archive the engine unpacks:\n{log}");
        Assert.Contains($"on the engine's data root {engine.DataRoot}", log, StringComparison.Ordinal);
        Assert.Contains("1 new layer(s) of 24.0 MiB", log, StringComparison.Ordinal);
        Assert.Contains("engine_disk_margin_mib", log, StringComparison.Ordinal);

        // The plan said so beforehand, with the install's numbers: the same bytes needed, the same new layers.
        var (planNeeded, planNewLayers, planDetail) = EngineNeed(tooBigPlan);
        Assert.Equal(needed, planNeeded);
        Assert.Equal(1, planNewLayers);
        Assert.Contains(planDetail[..planDetail.IndexOf(", but only", StringComparison.Ordinal)], log, StringComparison.Ordinal);

        // Refused at the pre-check: nothing was loaded or stopped; the same container runs since the same instant.
        Assert.Contains("pre-check failed", log, StringComparison.Ordinal);
        Assert.DoesNotContain("docker-compose LOAD", log, StringComparison.Ordinal);
        Assert.DoesNotContain("docker-compose STOP", log, StringComparison.Ordinal);
        Assert.Equal(container, rig.WebContainer());
        Assert.Equal(startedAt, StartedAt(rig, container));
        Assert.Equal("v1", rig.Client.ShowArtifact());
        Assert.Equal("web 1.0", rig.Answer());
        rig.AssertSettled("v1");
        Assert.Null(rig.ImageId(tooBig));

        // The same size, but its 24 MiB layer is in the engine already: it fits, installs and serves.
        var install = rig.Client.Install(fitsArtifact);
        output.WriteLine($"install that fits: {install}");
        Assert.True(install.ExitCode == 0, $"the artifact whose layer is present: {install}\n{rig.Docker("system", "df").Stdout}");
        var passed = PassedRegex().Match(install.Stdout + install.Stderr);
        Assert.True(passed.Success, $"the install does not log what its images need on the engine:\n{install}");
        var (fitsNeeded, fitsNewLayers, _) = EngineNeed(fitsPlan);
        Assert.Equal(long.Parse(passed.Groups["needed"].Value, CultureInfo.InvariantCulture), fitsNeeded);
        Assert.Equal(1, fitsNewLayers);
        Assert.Equal("1", passed.Groups["layers"].Value);
        Assert.Equal("0.0", passed.Groups["mib"].Value);
        Assert.True(rig.Client.Commit().ExitCode == 0, "committing the artifact that fits");
        Assert.Equal("web 2.0", rig.Answer());
        rig.AssertSettled("v2-fits");
    }

    [GeneratedRegex(@"need (at least )?[\d.]+ MiB \((?<needed>\d+) bytes.*?only [\d.]+ MiB \((?<free>\d+) bytes\) are free", RegexOptions.Singleline)]
    private static partial Regex NeedsRegex();

    [GeneratedRegex(@"engine disk: the images of v2-fits need [\d.]+ MiB \((?<needed>\d+) bytes: (?<layers>\d+) new layer\(s\) of (?<mib>[\d.]+) MiB")]
    private static partial Regex PassedRegex();

    /// <summary>From `app plan --json`: the bytes the engine disk needs, the new layers of all images, and the engine-disk detail.</summary>
    private static (long Needed, int NewLayers, string Detail) EngineNeed(CmdResult plan)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(plan.Stdout);
        var disk = doc.RootElement.GetProperty("engine_disk");
        var newLayers = doc.RootElement.GetProperty("images").EnumerateArray().Sum(i => i.GetProperty("new_layers").GetInt32());
        return (disk.GetProperty("needed").GetInt64(), newLayers, disk.GetProperty("detail").GetString()!);
    }

    private static string StartedAt(DeviceRig rig, string container)
    {
        Assert.False(string.IsNullOrEmpty(container), "v1's container does not run");
        var r = rig.Docker("inspect", "--format", "{{.State.StartedAt}}", container);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout.Trim();
    }

    /// <summary>Builds <paramref name="tag"/> on the shared engine: <paramref name="from"/> plus one file of random bytes (MiB; 0: a few bytes).</summary>
    private string Build(string tag, string from, (string Name, int MiB) file)
    {
        using var context = new TempDir("disk-image");
        using (var f = File.Create(context.File(file.Name)))
        {
            var block = new byte[file.MiB == 0 ? 16 : 1 << 20];
            for (var i = 0; i < Math.Max(1, file.MiB); i++)
            {
                Random.Shared.NextBytes(block);
                f.Write(block);
            }
        }

        context.Write("Dockerfile", $"FROM {from}\nCOPY {file.Name} /{file.Name}\n");
        DockerEngine.DockerOk("build", "-q", "-t", tag, context.Path);
        _tags.Add(tag);
        return tag;
    }

    private static CorpusImage Save(string tag, DeviceRig rig)
    {
        var saved = AppArtifacts.SaveDockerImage(tag, tag, rig.Artifacts);
        return new CorpusImage(saved.UrlNew, saved.Id, saved.SavedPath);
    }

    public void Dispose()
    {
        foreach (var t in _tags)
        {
            DockerEngine.Docker("image", "rm", t);
        }
    }
}
