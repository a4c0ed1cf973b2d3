using System.Security.Cryptography;
using System.Text.Json;

namespace Delta.Tests;

/// <summary>
/// Test helper that writes deep-delta payloads in the reference generator's on-disk layout, using
/// the real xdelta3 encoder. Changed layers are paired with the current layer whose xdelta3 output
/// is smallest (content pairing), or by position when <c>positional</c> is set (as the reference
/// does for OCI).
/// </summary>
internal static class DeepDeltaMaker
{
    private static string Sha(string file)
    {
        using var f = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }

    private static List<string> ManifestLayers(string dir)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "manifest.json")));
        return doc.RootElement[0].GetProperty("Layers").EnumerateArray().Select(e => e.GetString()!).ToList();
    }

    private static List<string> OciLayers(string dir)
    {
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "index.json")));
        string m = index.RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!.Split(':')[1];
        using var man = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "blobs", "sha256", m)));
        return man.RootElement.GetProperty("layers").EnumerateArray().Select(e => e.GetProperty("digest").GetString()!.Split(':')[1]).ToList();
    }

    public static string OciConfigDigest(string dir)
    {
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "index.json")));
        string m = index.RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!.Split(':')[1];
        using var man = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "blobs", "sha256", m)));
        return man.RootElement.GetProperty("config").GetProperty("digest").GetString()!.Split(':')[1];
    }

    private static string BestBase(string newFile, IReadOnlyList<string> candidates, string work)
    {
        string best = candidates[0];
        long bestSize = long.MaxValue;
        foreach (var c in candidates)
        {
            string d = Path.Combine(work, "probe.vcdiff");
            Tools.XdeltaEncode(c, newFile, d);
            long size = new FileInfo(d).Length;
            if (size < bestSize)
            {
                bestSize = size;
                best = c;
            }
        }
        return best;
    }

    /// <summary>docker-archive deep delta from two `docker save` tars; returns the payload path.</summary>
    public static string DockerArchive(string currentTar, string newTar, string work)
    {
        string cur = Path.Combine(work, "cur"), nw = Path.Combine(work, "new");
        Directory.CreateDirectory(cur);
        Directory.CreateDirectory(nw);
        Tools.Run("/usr/bin/tar", "-xf", currentTar, "-C", cur);
        Tools.Run("/usr/bin/tar", "-xf", newTar, "-C", nw);
        var curLayers = ManifestLayers(cur).Select(l => Path.Combine(cur, l)).ToList();
        var curBySum = curLayers.ToDictionary(Sha, l => l);
        foreach (var l in ManifestLayers(nw))
        {
            string file = Path.Combine(nw, l);
            string sum = Sha(file);
            if (curBySum.ContainsKey(sum))
            {
                File.WriteAllText(file + ".sha256sum", sum + "\n");
            }
            else
            {
                string b = BestBase(file, curLayers, work);
                Tools.XdeltaEncode(b, file, file + ".vcdiff");
                File.WriteAllText(file + ".current.sha256sum", Sha(b) + "\n");
                File.WriteAllText(file + ".new.sha256sum", sum + "\n");
            }
            File.Delete(file);
        }
        string payload = Path.Combine(work, "payload.tar");
        Tools.Run("/usr/bin/tar", "-cf", payload, "-C", nw, ".");
        return payload;
    }

    /// <summary>
    /// OCI deep delta from two OCI layout directories (skopeo copy ... oci:dir). With
    /// <paramref name="positional"/> every layer is delta-encoded against the current layer at the
    /// same position, like the reference generator; otherwise unchanged blobs are left out (taken
    /// from the base) and changed ones are paired by content.
    /// </summary>
    public static string Oci(string curDir, string newDir, string work, bool positional)
    {
        string nw = Path.Combine(work, "new-oci");
        Tools.Run("/bin/cp", "-a", newDir, nw);
        var curLayers = OciLayers(curDir);
        var newLayers = OciLayers(nw);
        string blob(string root, string d) => Path.Combine(root, "blobs", "sha256", d);
        for (int i = 0; i < newLayers.Count; i++)
        {
            string d = newLayers[i];
            string file = blob(nw, d);
            string? source;
            if (positional)
            {
                if (i >= curLayers.Count)
                {
                    continue;
                }
                source = curLayers[i];
            }
            else if (curLayers.Contains(d))
            {
                File.Delete(file);
                continue;
            }
            else
            {
                string b = BestBase(file, curLayers.Select(c => blob(curDir, c)).ToList(), work);
                source = Path.GetFileName(b);
            }
            Tools.XdeltaEncode(blob(curDir, source), file, file + ".vcdiff");
            File.WriteAllText(file + ".source", "blobs/sha256/" + source + "\n");
            File.Delete(file);
        }
        string payload = Path.Combine(work, "payload-oci.tar");
        Tools.Run("/usr/bin/tar", "-cf", payload, "-C", nw, ".");
        return payload;
    }
}
