using AppModule.Core.SubModules;

namespace AppModule.Tests;

/// <summary>The sub-module contract names the variables its hosts and sub-modules share in one place.</summary>
public sealed class SubModuleContextTests
{
    [Theory]
    [InlineData("docker-compose", "MENDER_APP_DOCKER_COMPOSE_CONF")]
    [InlineData("k8s", "MENDER_APP_K8S_CONFIG")]
    [InlineData("podman", "MENDER_APP_PODMAN_CONF")]
    public void Each_orchestrator_has_one_variable_naming_its_config_file(string orchestrator, string variable) =>
        Assert.Equal(variable, SubModuleContext.ConfigPathVariable(orchestrator));
}
