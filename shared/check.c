#define _GNU_SOURCE
#include "check.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "alloc.h"

extern char **environ;

enum { OUT_MAX = 16 * 1024 };

uint64_t nano_check_cpu_ms(uint64_t cpu_ms)
{
    return cpu_ms > NANO_CHECK_MIN_CPU_MS ? cpu_ms : NANO_CHECK_MIN_CPU_MS;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void nano_check_one_line(const char *text, const char *path, char *out, size_t cap)
{
    size_t first = strcspn(text, "\n");
    const char *frame = strstr(text, "\n    at ");
    char loc[1024] = "";
    if (frame != NULL) {
        frame += strlen("\n    at ");
        size_t n = strcspn(frame, "\n");
        const char *open = memchr(frame, '(', n);
        const char *close = open != NULL ? memchr(open, ')', n - (size_t)(open - frame)) : NULL;
        const char *from = open != NULL && close != NULL ? open + 1 : frame;
        size_t len = open != NULL && close != NULL ? (size_t)(close - open - 1) : n;
        if (len < sizeof loc)
            snprintf(loc, sizeof loc, "%.*s", (int)len, from);
    }
    size_t plen = path != NULL ? strlen(path) : 0;
    /* "PATH: evaluation threw: ..." names no place: the first frame's goes in front. */
    if (loc[0] != '\0' && plen > 0 && first > plen + 2 && strncmp(text, path, plen) == 0 &&
        text[plen] == ':' && text[plen + 1] == ' ') {
        snprintf(out, cap, "%s: %.*s", loc, (int)(first - plen - 2), text + plen + 2);
        return;
    }
    snprintf(out, cap, "%.*s", (int)first, text);
}

void nano_check_mask_secrets(const nano_env *env, char *text, size_t cap)
{
    static const char mask[] = "[REDACTED]";
    for (size_t i = 0; i < env->n_entries; i++) {
        const nano_env_entry *e = &env->entries[i];
        if (!e->is_secret || e->value_len == 0)
            continue;
        for (char *at = strstr(text, e->value); at != NULL; at = strstr(at, e->value)) {
            size_t rest = strlen(at + e->value_len);
            size_t head = (size_t)(at - text) + sizeof mask - 1;
            if (head + rest + 1 > cap)
                rest = head < cap ? cap - head - 1 : 0;
            if (head >= cap) { /* no room for the mask: the text ends before the secret */
                *at = '\0';
                break;
            }
            memmove(at + sizeof mask - 1, at + e->value_len, rest);
            memcpy(at, mask, sizeof mask - 1);
            text[head + rest] = '\0';
            at += sizeof mask - 1;
        }
    }
}

uint64_t nano_check_run_delay_ms(int pid, int tid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", pid, tid);
    FILE *f = fopen(path, "re");
    unsigned long long cpu = 0, wait = 0;
    int n = f != NULL ? fscanf(f, "%llu %llu", &cpu, &wait) : 0;
    if (f != NULL)
        fclose(f);
    return n == 2 ? wait / 1000000 : 0;
}

/* Reads the child's stdout until EOF, or until it has had timeout ms of wall time not spent
 * waiting for a CPU (a checker starved on a busy machine is not a module that hangs; at
 * most 4 × timeout of wall time in all). Returns 0 at EOF, NANO_ETOOBIG past the time. */
static int read_until(int fd, pid_t pid, uint64_t timeout, char *buf, size_t cap, size_t *len)
{
    uint64_t start = mono_ms(), waited0 = nano_check_run_delay_ms(pid, pid);
    for (;;) {
        uint64_t now = mono_ms();
        uint64_t waited = nano_check_run_delay_ms(pid, pid) - waited0;
        if (now - start >= 4 * timeout || now - start >= timeout + waited)
            return NANO_ETOOBIG;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 100);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue; /* the time is checked above */
        char tmp[4096];
        ssize_t got = read(fd, tmp, sizeof tmp);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return 0;
        size_t keep = (size_t)got < cap - 1 - *len ? (size_t)got : cap - 1 - *len;
        memcpy(buf + *len, tmp, keep); /* beyond cap: drained, not kept */
        *len += keep;
        buf[*len] = '\0';
    }
}

/* The verdict line: the last line of JSON the checker printed. */
static int parse_verdict(char *out, const char *path, nano_error *err)
{
    char *line = out, *save = NULL;
    for (char *p = strtok_r(out, "\n", &save); p != NULL; p = strtok_r(NULL, "\n", &save))
        line = p;
    json_t *v = json_loads(line, 0, NULL);
    json_t *ok = json_object_get(v, "ok");
    json_t *e = json_object_get(v, "error");
    const char *id = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    int rc;
    if (json_is_true(ok))
        rc = 0;
    else if (json_is_false(ok) && id != NULL && msg != NULL)
        rc = nano_error_set(err, NANO_EINVAL, id, "%s", msg);
    else
        rc = nano_error_set(err, NANO_EIO, "check_failed",
                            "checking %s: the checker answered "
                            "something unreadable",
                            path);
    json_decref(v);
    return rc;
}

json_t *nano_check_env_to_json(const nano_env *env)
{
    json_t *list = json_array();
    for (size_t i = 0; env != NULL && i < env->n_entries; i++) {
        const nano_env_entry *e = &env->entries[i];
        json_array_append_new(list,
                              json_pack("{s:s, s:s%, s:b, s:b}", "name", e->name, "value", e->value,
                                        e->value_len, "secret", e->is_secret, "json", e->is_json));
    }
    return list;
}

int nano_check_env_from_json(const json_t *list, nano_env *env, nano_error *err)
{
    if (!json_is_array(list))
        return nano_error_set(err, NANO_EINVAL, "check_env", "the env is not a JSON array");
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        json_t *v = json_object_get(e, "value");
        if (name == NULL || !json_is_string(v))
            return nano_error_set(err, NANO_EINVAL, "check_env", "env entry %zu: no name or value",
                                  i);
        int rc = json_is_true(json_object_get(e, "json"))
                     ? nano_env_set_json(env, name, json_string_value(v), json_string_length(v),
                                         err)
                     : nano_env_set(env, name, json_string_value(v), json_string_length(v),
                                    json_is_true(json_object_get(e, "secret")), err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Writes all of data to fd (the checker reads its stdin whole before it loads anything). */
static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return NANO_EIO; /* the checker is gone: its verdict (or its death) says why */
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

struct nano_check {
    pid_t pid;
    int fd; /* the read end of the checker's stdout */
    uint64_t timeout;
    char *path;
};

int nano_check_start(const nano_check_options *o, nano_check **out, nano_error *err)
{
    char cpu[24], mem[24];
    snprintf(cpu, sizeof cpu, "%" PRIu64, o->cpu_ms > 0 ? o->cpu_ms : NANO_CHECK_MIN_CPU_MS);
    snprintf(mem, sizeof mem, "%" PRIu64, o->memory_mb);
    const char *argv[16];
    int n = 0;
    argv[n++] = o->checker;
    argv[n++] = "check";
    argv[n++] = "--json";
    argv[n++] = "--cpu-limit";
    argv[n++] = cpu;
    if (o->memory_mb > 0) {
        argv[n++] = "--memory-limit";
        argv[n++] = mem;
    }
    if (o->name != NULL) {
        argv[n++] = "--name";
        argv[n++] = o->name;
    }
    if (o->node_compat)
        argv[n++] = "--node-compat";
    if (o->env != NULL)
        argv[n++] = "--env-stdin";
    argv[n++] = o->path;
    argv[n] = NULL;

    int pipefd[2], infd[2] = {-1, -1};
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return nano_error_set(err, NANO_EIO, "check_failed", "checking %s: pipe: %s", o->path,
                              strerror(errno));
    if (o->env != NULL && pipe2(infd, O_CLOEXEC) != 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return nano_error_set(err, NANO_EIO, "check_failed", "checking %s: pipe: %s", o->path,
                              strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    if (o->env != NULL)
        posix_spawn_file_actions_adddup2(&fa, infd[0], 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_init(&attr);
    /* The caller may block or ignore signals (SIGPIPE, libuv's): the checker starts clean. */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int src = posix_spawn(&pid, o->checker, &fa, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(pipefd[1]);
    if (infd[0] >= 0)
        close(infd[0]);
    if (src != 0) {
        close(pipefd[0]);
        if (infd[1] >= 0)
            close(infd[1]);
        return nano_error_set(err, NANO_EIO, "check_failed", "cannot run the checker %s: %s",
                              o->checker, strerror(src));
    }
    if (infd[1] >= 0) {
        /* At most 128 entries of 5 KiB: written before any verdict is read (the checker
         * reads it whole first; a dead one makes this fail with EPIPE, SIGPIPE being
         * ignored by both callers). */
        json_t *list = nano_check_env_to_json(o->env);
        char *text = json_dumps(list, JSON_COMPACT);
        if (text != NULL) {
            write_all(infd[1], text, strlen(text));
            explicit_bzero(text, strlen(text));
            free(text);
        }
        json_decref(list);
        close(infd[1]);
    }
    nano_check *c = nano_xcalloc(1, sizeof *c);
    c->pid = pid;
    c->fd = pipefd[0];
    /* The checker bounds itself at cpu_ms + NANO_CHECK_SLACK_MS; this catches one that cannot. */
    c->timeout = o->timeout_ms > 0 ? o->timeout_ms : o->cpu_ms + NANO_CHECK_SLACK_MS + 5000;
    c->path = nano_xstrdup(o->path);
    *out = c;
    return 0;
}

int nano_check_finish(nano_check *c, nano_error *err)
{
    char *out = nano_xcalloc(1, OUT_MAX);
    size_t len = 0;
    int rrc = read_until(c->fd, c->pid, c->timeout, out, OUT_MAX, &len);
    close(c->fd);
    bool killed = rrc != 0;
    if (killed)
        kill(c->pid, SIGKILL);
    int status = 0;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
        ;
    int rc;
    if (killed)
        rc = nano_error_set(err, NANO_EINVAL, "module_timeout",
                            "%s: loading did not finish within %" PRIu64 " ms", c->path,
                            c->timeout);
    else if (WIFSIGNALED(status))
        rc = nano_error_set(err, NANO_EINVAL, "module_crashed",
                            "%s: the checker died loading it (signal %d)", c->path,
                            WTERMSIG(status));
    else
        rc = parse_verdict(out, c->path, err);
    nano_free(out);
    nano_free(c->path);
    nano_free(c);
    return rc;
}

int nano_check_module(const nano_check_options *o, nano_error *err)
{
    nano_check *c = NULL;
    int rc = nano_check_start(o, &c, err);
    return rc != 0 ? rc : nano_check_finish(c, err);
}
