/* One life of a Lambda extension on a fake Extensions API (`startup --lambda HOLD_MS prog`),
 * the way Lambda's init sees it:
 *
 *   register fork+exec until the first bytes of the extension's POST /register arrive (Lambda
 *            starts the function's runtime only once every extension has registered)
 *   init     fork+exec until the extension's first GET /event/next (CLOCK_MONOTONIC; Lambda
 *            ends the init phase once every extension waits there)
 *   memory   HOLD_MS after that request, /proc/PID/smaps_rollup (Rss, Anonymous) and Threads
 *   life     then SHUTDOWN is the answer to that GET; CPU of the whole process (utime+stime
 *            from wait4's rusage, every thread included) and wall time until it exits
 *
 * The API answers /register (an identifier and a function name), /init/error and /exit/error
 * (recorded), /telemetry (accepted) on 127.0.0.1, port chosen by the kernel and handed to the
 * child as AWS_LAMBDA_RUNTIME_API; the child's stdout and stderr go to /dev/null; the rest of
 * the environment passes through. Prints one JSON line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 16
#define BUFFER_BYTES 65536

struct client {
    int fd;
    size_t length;
    double arrived; /* when the first bytes of the request now in `buffer` were read */
    char buffer[BUFFER_BYTES];
};

static double monotonic_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static long long epoch_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void answer(int fd, const char *status, const char *headers, const char *body) {
    char text[1024];
    int n = snprintf(text, sizeof text, "HTTP/1.1 %s\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
                     status, headers, strlen(body), body);
    if (write(fd, text, n) < 0) { /* the extension went away: its exit is seen by wait4 */ }
}

/* smaps_rollup's Rss and Anonymous (kB), and the thread count. */
static void sample_memory(pid_t pid, long *rss_kb, long *anon_kb, long *threads) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "Rss: %ld", rss_kb);
        sscanf(line, "Anonymous: %ld", anon_kb);
    }
    if (f) fclose(f);
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) sscanf(line, "Threads: %ld", threads);
    if (f) fclose(f);
}

/* Length of the first whole request in `c` (headers and Content-Length body), or 0. */
static size_t whole_request(struct client *c) {
    c->buffer[c->length < BUFFER_BYTES ? c->length : BUFFER_BYTES - 1] = 0;
    char *end = strstr(c->buffer, "\r\n\r\n");
    if (!end) return 0;
    size_t head = (size_t)(end - c->buffer) + 4, body = 0;
    for (char *p = c->buffer; p < end; p = strstr(p, "\r\n") + 2) {
        if (strncasecmp(p, "Content-Length:", 15) == 0) body = strtoul(p + 15, NULL, 10);
        if (!strstr(p, "\r\n")) break;
    }
    return c->length >= head + body ? head + body : 0;
}

int lambda_life(int hold_ms, char **argv) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 16) ||
        getsockname(listener, (struct sockaddr *)&address, &size)) { perror("listen"); return 1; }
    char api[64];
    snprintf(api, sizeof api, "127.0.0.1:%d", ntohs(address.sin_port));
    setenv("AWS_LAMBDA_RUNTIME_API", api, 1);

    double started = monotonic_us();
    pid_t pid = fork();
    if (pid == 0) {
        close(listener);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], argv);
        _exit(127);
    }

    static struct client clients[MAX_CLIENTS];
    for (int i = 0; i < MAX_CLIENTS; i++) clients[i].fd = -1;
    double registered_at = -1, first_next = -1, shutdown_sent = -1, exited = -1;
    int held = -1, registered = 0, nexts = 0;
    long rss_kb = -1, anon_kb = -1, threads = -1;
    char error[128] = "";
    struct rusage usage = {0};
    int status = 0;

    while (exited < 0) {
        struct pollfd fds[MAX_CLIENTS + 1];
        int slots[MAX_CLIENTS + 1], count = 0;
        fds[count] = (struct pollfd){.fd = listener, .events = POLLIN};
        slots[count++] = -1;
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (clients[i].fd >= 0) {
                fds[count] = (struct pollfd){.fd = clients[i].fd, .events = POLLIN};
                slots[count++] = i;
            }
        poll(fds, count, 1);
        if (fds[0].revents & POLLIN) {
            int fd = accept(listener, NULL, NULL);
            int slot = 0;
            while (slot < MAX_CLIENTS && clients[slot].fd >= 0) slot++;
            if (slot < MAX_CLIENTS) {
                clients[slot].fd = fd;
                clients[slot].length = 0;
            } else close(fd);
        }
        for (int k = 1; k < count; k++) {
            if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            struct client *c = &clients[slots[k]];
            ssize_t n = read(c->fd, c->buffer + c->length, BUFFER_BYTES - 1 - c->length);
            if (n <= 0) {
                if (held == c->fd) held = -1;
                close(c->fd);
                c->fd = -1;
                continue;
            }
            if (c->length == 0) c->arrived = monotonic_us();
            c->length += (size_t)n;
            size_t whole;
            while ((whole = whole_request(c)) > 0) {
                if (strncmp(c->buffer, "POST /2020-01-01/extension/register", 35) == 0) {
                    registered = 1;
                    if (registered_at < 0) registered_at = c->arrived;
                    answer(c->fd, "200 OK", "Lambda-Extension-Identifier: bench-extension-id\r\n",
                           "{\"functionName\":\"bench\",\"functionVersion\":\"$LATEST\",\"handler\":\"index.handler\"}");
                } else if (strncmp(c->buffer, "GET /2020-01-01/extension/event/next", 36) == 0) {
                    nexts++;
                    if (first_next < 0) first_next = monotonic_us();
                    held = c->fd; /* answered below: SHUTDOWN once, then never */
                } else if (strncmp(c->buffer, "POST /2020-01-01/extension/init/error", 37) == 0 ||
                           strncmp(c->buffer, "POST /2020-01-01/extension/exit/error", 37) == 0) {
                    snprintf(error, sizeof error, "%.*s", (int)strcspn(c->buffer + 26, " "), c->buffer + 26);
                    answer(c->fd, "202 Accepted", "", "{}");
                } else if (strncmp(c->buffer, "PUT /2022-07-01/telemetry", 25) == 0) {
                    answer(c->fd, "200 OK", "", "\"OK\"");
                } else {
                    answer(c->fd, "404 Not Found", "", "{}");
                }
                memmove(c->buffer, c->buffer + whole, c->length - whole);
                c->length -= whole;
                if (c->length > 0) c->arrived = monotonic_us(); /* the rest came with the last read */
            }
        }
        double now = monotonic_us();
        if (held >= 0 && shutdown_sent < 0 && now - first_next >= hold_ms * 1000.0) {
            sample_memory(pid, &rss_kb, &anon_kb, &threads);
            char event[160];
            snprintf(event, sizeof event, "{\"eventType\":\"SHUTDOWN\",\"shutdownReason\":\"spindown\",\"deadlineMs\":%lld}",
                     epoch_ms() + 2000);
            shutdown_sent = monotonic_us();
            answer(held, "200 OK", "Lambda-Extension-Event-Identifier: bench-shutdown\r\n", event);
            held = -1;
        }
        if (wait4(pid, &status, WNOHANG, &usage) == pid) exited = monotonic_us();
        else if (now - started > 30e6) {
            kill(pid, SIGKILL);
            wait4(pid, &status, 0, &usage);
            exited = monotonic_us();
            snprintf(error, sizeof error, "timeout");
        }
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i].fd >= 0) close(clients[i].fd);
    close(listener);
    double cpu_us = usage.ru_utime.tv_sec * 1e6 + usage.ru_utime.tv_usec + usage.ru_stime.tv_sec * 1e6 + usage.ru_stime.tv_usec;
    printf("{\"register_us\":%.1f,\"init_us\":%.1f,\"registered\":%s,\"event_next_calls\":%d,\"rss_kb\":%ld,\"anon_kb\":%ld,\"threads\":%ld,"
           "\"life_cpu_us\":%.0f,\"maxrss_kb\":%ld,\"shutdown_to_exit_us\":%.1f,\"life_us\":%.1f,\"exit_status\":%d,"
           "\"error\":\"%s\"}\n",
           registered_at < 0 ? -1 : registered_at - started, first_next < 0 ? -1 : first_next - started, registered ? "true" : "false", nexts, rss_kb, anon_kb, threads, cpu_us,
           usage.ru_maxrss, shutdown_sent < 0 ? -1 : exited - shutdown_sent, exited - started,
           WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), error);
    return first_next < 0 ? 1 : 0;
}
