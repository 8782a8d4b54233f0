/* etcd_fixture.c: a real etcd for the runners that need one (etcd_fixture.h). */
#include "etcd_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcd.h"

typedef struct etcd_server {
    pid_t pid;
    int client_port;
    char dir[64];
    char url[64]; /* etcd://127.0.0.1:PORT */
} etcd_server;

static etcd_server server;
static bool server_tried;
static const char *server_missing; /* why there is no etcd: the skip message */

void etcd_fx_fresh_url(char *out, size_t cap, const char *tag)
{
    unsigned char r[8] = {0};
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        fail_msg("getrandom failed");
    snprintf(out, cap, "%s/%s/%02x%02x%02x%02x%02x%02x%02x%02x", etcd_fx_url(), tag, r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7]);
}

uint64_t etcd_fx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A socket bound to a free loopback port (*port), listening when listen_too. */
int etcd_fx_loopback_socket(bool listen_too, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (listen_too)
        assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A loopback port nothing listens on right now (bound, read and closed). */
int etcd_fx_free_port(void)
{
    int port = 0;
    close(etcd_fx_loopback_socket(false, &port));
    return port;
}

static const char *etcd_binary(void)
{
    static char found[512];
    const char *env = getenv("NANO_ETCD");
    if (env != NULL)
        return access(env, X_OK) == 0 ? env : NULL;
    if (access("/usr/bin/etcd", X_OK) == 0)
        return "/usr/bin/etcd";
    const char *path = getenv("PATH");
    while (path != NULL && *path != '\0') {
        size_t n = strcspn(path, ":");
        snprintf(found, sizeof found, "%.*s/etcd", (int)n, path);
        if (n > 0 && access(found, X_OK) == 0)
            return found;
        path += n + (path[n] == ':');
    }
    return NULL;
}

static void server_stop(void)
{
    if (server.pid > 0) {
        kill(server.pid, SIGKILL);
        waitpid(server.pid, NULL, 0);
        server.pid = 0;
    }
    if (server.dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", server.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_etcd: could not remove %s\n", server.dir);
        server.dir[0] = '\0';
    }
}

static void server_print_log(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/etcd.log", server.dir);
    FILE *f = fopen(path, "r");
    char line[512];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        fprintf(stderr, "etcd: %s", line);
    if (f != NULL)
        fclose(f);
}

/* Starts etcd and waits (at most 15 s) until it answers a range. */
static void server_start(void)
{
    const char *bin = etcd_binary();
    if (bin == NULL) {
        server_missing = "etcd not found ($NANO_ETCD, /usr/bin/etcd, PATH): install "
                         "etcd-server (scripts/bootstrap) to run the etcd client tests";
        return;
    }
    snprintf(server.dir, sizeof server.dir, "/tmp/nano-etcd-XXXXXX");
    assert_non_null(mkdtemp(server.dir));
    server.client_port = etcd_fx_free_port();
    int peer_port = etcd_fx_free_port();
    char client[64], peer[64], cluster[96], data[96], log[96];
    snprintf(client, sizeof client, "http://127.0.0.1:%d", server.client_port);
    snprintf(peer, sizeof peer, "http://127.0.0.1:%d", peer_port);
    snprintf(cluster, sizeof cluster, "t0=%s", peer);
    snprintf(data, sizeof data, "%s/data", server.dir);
    snprintf(log, sizeof log, "%s/etcd.log", server.dir);
    snprintf(server.url, sizeof server.url, "etcd://127.0.0.1:%d", server.client_port);
    pid_t parent = getpid();
    server.pid = fork();
    assert_true(server.pid >= 0);
    if (server.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with the test, however the test ends */
        if (getppid() != parent)
            _exit(1);
        FILE *out = freopen(log, "w", stdout);
        if (out == NULL || dup2(fileno(stdout), 2) < 0)
            _exit(1);
        execl(bin, "etcd", "--name", "t0", "--data-dir", data, "--listen-client-urls", client,
              "--advertise-client-urls", client, "--listen-peer-urls", peer,
              "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster,
              "--experimental-watch-progress-notify-interval", "300ms", (char *)NULL);
        _exit(127);
    }
    atexit(server_stop);
    cp_etcd *e = NULL;
    assert_int_equal(cp_etcd_open(server.url, NULL, &e, NULL), 0);
    cp_etcd_set_limits(e, &(cp_etcd_limits){.connect_timeout_ms = 200, .timeout_ms = 1000});
    uint64_t deadline = etcd_fx_now_ms() + 15000;
    int rc = -1;
    while (rc != 0 && etcd_fx_now_ms() < deadline) {
        cp_etcd_result *r = NULL;
        rc = cp_etcd_get(e, "x", 1, &r, NULL);
        cp_etcd_result_free(r);
        if (rc != 0) {
            if (waitpid(server.pid, NULL, WNOHANG) == server.pid) {
                server.pid = 0;
                break;
            }
            usleep(50 * 1000);
        }
    }
    cp_etcd_free(e);
    if (rc != 0) {
        server_print_log();
        fail_msg("etcd (%s) did not answer on %s within 15 s", bin, server.url);
    }
}

/* The shared etcd's URL, started on first use; skips the test when etcd is absent. */
const char *etcd_fx_url(void)
{
    if (!server_tried) {
        server_tried = true;
        server_start();
    }
    if (server_missing != NULL) {
        print_message("[  SKIP    ] %s\n", server_missing);
        skip();
    }
    return server.url;
}

const char *etcd_fx_missing(void)
{
    if (!server_tried) {
        server_tried = true;
        server_start();
    }
    return server_missing;
}
