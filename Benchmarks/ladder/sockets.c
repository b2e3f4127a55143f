/* The floor of the ladder (Benchmarks/ladder.py): what an extension does first, in C with plain
 * sockets, linked statically. Reads AWS_LAMBDA_RUNTIME_API (host:port, IPv4), POSTs
 * /2020-01-01/extension/register with Lambda-Extension-Name, reads the
 * Lambda-Extension-Identifier header, then GETs /event/next with it until SHUTDOWN.
 *
 *   cc -O2 -static -o sockets Benchmarks/ladder/sockets.c
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static char response[65536];

/* One request on `fd`; the response (headers and Content-Length body) lands in `response`. */
static int exchange(int fd, const char *request) {
    size_t sent = 0, length = strlen(request), got = 0;
    while (sent < length) {
        ssize_t n = write(fd, request + sent, length - sent);
        if (n <= 0) return -1;
        sent += (size_t)n;
    }
    for (;;) {
        ssize_t n = read(fd, response + got, sizeof response - 1 - got);
        if (n <= 0) return -1;
        got += (size_t)n;
        response[got] = 0;
        char *end = strstr(response, "\r\n\r\n");
        if (!end) continue;
        size_t body = 0;
        for (char *p = response; p && p < end; p = strstr(p, "\r\n"), p = p ? p + 2 : p)
            if (strncasecmp(p, "Content-Length:", 15) == 0) body = strtoul(p + 15, NULL, 10);
        if (got >= (size_t)(end + 4 - response) + body) return 0;
    }
}

/* The value of header `name` in `response`, copied into `out`. */
static int header(const char *name, char *out, size_t size) {
    size_t length = strlen(name);
    for (char *p = response; p; p = strstr(p, "\r\n"), p = p ? p + 2 : p) {
        if (strncmp(p, "\r\n", 2) == 0) break;
        if (strncasecmp(p, name, length) == 0 && p[length] == ':') {
            p += length + 1;
            while (*p == ' ') p++;
            size_t n = strcspn(p, "\r\n");
            if (n >= size) return -1;
            memcpy(out, p, n);
            out[n] = 0;
            return 0;
        }
    }
    return -1;
}

int main(void) {
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api) { fprintf(stderr, "AWS_LAMBDA_RUNTIME_API is not set\n"); return 1; }
    char host[64];
    const char *colon = strrchr(api, ':');
    if (!colon || (size_t)(colon - api) >= sizeof host) { fprintf(stderr, "bad AWS_LAMBDA_RUNTIME_API\n"); return 1; }
    memcpy(host, api, (size_t)(colon - api));
    host[colon - api] = 0;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) { fprintf(stderr, "not an IPv4 address: %s\n", host); return 1; }
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&address, sizeof address)) { perror("connect"); return 1; }

    char request[512], id[128];
    const char *body = "{\"events\":[\"SHUTDOWN\"]}";
    snprintf(request, sizeof request,
             "POST /2020-01-01/extension/register HTTP/1.1\r\nHost: %s\r\nLambda-Extension-Name: ladder\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", api, strlen(body), body);
    if (exchange(fd, request) || header("Lambda-Extension-Identifier", id, sizeof id)) {
        fprintf(stderr, "register failed\n");
        return 1;
    }
    snprintf(request, sizeof request,
             "GET /2020-01-01/extension/event/next HTTP/1.1\r\nHost: %s\r\nLambda-Extension-Identifier: %s\r\n\r\n", api, id);
    for (;;) {
        if (exchange(fd, request)) { fprintf(stderr, "event/next failed\n"); return 1; }
        if (strstr(response, "\"SHUTDOWN\"")) return 0;
    }
}
