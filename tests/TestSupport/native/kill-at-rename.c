/* A fault-injection shim for the store's crash safety (tests/Hardening.Tests/StoreWriteFaultTests.cs,
 * AgentStoreWriteFaultTests.cs, tests/AppModule.Tests/StateMachineTests.cs; compiled by TestSupport's KillAtRename).
 * Preloaded into one `app` or fleet-agent process (LD_PRELOAD), it counts that process's renames (and hard links,
 * which .NET's File.Move without overwrite makes) -- every store transition of `app` is a
 * write-then-rename or a directory rename -- and logs each one to
 * $RENAME_LOG. With KILL_AT_RENAME=N it SIGKILLs the process just before the Nth rename takes
 * effect: the store is left exactly as a power cut at that point would leave it.
 * It removes its variables from the environment at load, so sub-modules and other children run
 * without it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int target = -1;
static int counter = 0;
static int logfd = -1;

__attribute__((constructor)) static void init(void)
{
    const char *n = getenv("KILL_AT_RENAME");
    const char *log = getenv("RENAME_LOG");
    if (n != NULL)
        target = atoi(n);
    if (log != NULL)
        logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    unsetenv("LD_PRELOAD");
    unsetenv("KILL_AT_RENAME");
    unsetenv("RENAME_LOG");
}

static void step(const char *from, const char *to)
{
    int k = __sync_add_and_fetch(&counter, 1);
    if (logfd >= 0)
        dprintf(logfd, "%d %s -> %s%s\n", k, from, to, k == target ? " KILLED" : "");
    if (k == target) {
        fsync(logfd);
        kill(getpid(), SIGKILL);
        pause();
    }
}

int rename(const char *from, const char *to)
{
    static int (*real)(const char *, const char *);
    if (real == NULL)
        real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    step(from, to);
    return real(from, to);
}

int renameat(int fromdir, const char *from, int todir, const char *to)
{
    static int (*real)(int, const char *, int, const char *);
    if (real == NULL)
        real = (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
    step(from, to);
    return real(fromdir, from, todir, to);
}

int renameat2(int fromdir, const char *from, int todir, const char *to, unsigned int flags)
{
    static int (*real)(int, const char *, int, const char *, unsigned int);
    if (real == NULL)
        real = (int (*)(int, const char *, int, const char *, unsigned int))dlsym(RTLD_NEXT, "renameat2");
    step(from, to);
    return real(fromdir, from, todir, to, flags);
}

int link(const char *from, const char *to)
{
    static int (*real)(const char *, const char *);
    if (real == NULL)
        real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "link");
    step(from, to);
    return real(from, to);
}
