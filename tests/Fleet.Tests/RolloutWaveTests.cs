using Fleet.Core.State;

namespace Fleet.Tests;

public sealed class RolloutWaveTests
{
    [Theory]
    [InlineData("1,10%,50%", 30, new[] { 1, 3, 15, 30 })]
    [InlineData("1,50%", 10, new[] { 1, 5, 10 })]
    [InlineData("1,10%,50%,100%", 4, new[] { 1, 2, 4 })]
    [InlineData("100%", 7, new[] { 7 })]
    [InlineData("5,3,50", 8, new[] { 5, 8 })]
    [InlineData("1", 1, new[] { 1 })]
    public void Waves_are_cumulative_counts_or_percentages_of_the_group_and_the_last_takes_the_rest(string spec, int members, int[] bounds) =>
        Assert.Equal(bounds, Rollout.ParseWaves(spec, members));

    [Theory]
    [InlineData("0", "device count")]
    [InlineData("0%", "percentage")]
    [InlineData("150%", "percentage")]
    [InlineData("ten", "device count")]
    public void A_bad_wave_is_refused_with_what_to_write(string spec, string hint) =>
        Assert.Contains(hint, Assert.Throws<FormatException>(() => Rollout.ParseWaves(spec, 10)).Message);

    [Fact]
    public void A_member_is_released_with_its_wave_and_held_with_the_reason_otherwise()
    {
        var r = new Rollout("g", "2.0", RolloutStatus.Running, 0, [1, 3], ["a", "b", "c"], 0, 0, TimeSpan.Zero, 0, "", "1");
        Assert.True(r.Releases("a"));
        Assert.False(r.Releases("b"));
        Assert.Contains("wave 2 of 2 has not started", r.HeldReason("b"));
        Assert.Equal(-1, r.WaveOf("x"));
        Assert.Contains("paused", (r with { Status = RolloutStatus.Paused }).HeldReason("a"));
        Assert.True((r with { Status = RolloutStatus.Completed }).Releases("c"));
    }
}
