/* A stand-in for a Lambda function's runtime, for the CPU-share mode of make bench-cost
 * (Benchmarks/cpu_share.py). C, so that what it costs is what it is told to burn and nothing else.
 *
 *   standin_runtime INIT_MS INVOKE_MS UPLOAD_PORT BODY_FILE
 *
 * Burns INIT_MS of its own CPU time (its init), then writes "ready\n" to stdout: the moment a real
 * runtime asks for its first invocation. Then, for each line read from stdin: "invoke" burns
 * INVOKE_MS of CPU and, when UPLOAD_PORT is not 0, POSTs BODY_FILE (read at start) to
 * 127.0.0.1:UPLOAD_PORT/push.v1.PusherService/Push, as a profiler would, reads the answer's status
 * line and writes "done STATUS\n" (STATUS 0: no answer); "exit" ends it.
 * CPU time is CLOCK_PROCESS_CPUTIME_ID: under a CPU quota the wall time is what the quota makes it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static volatile unsigned long sink;

static void burn(double ms) {
    double end = cpu_ms() + ms;
    while (cpu_ms() < end)
        for (int i = 0; i < 1000; i++) sink += (unsigned long)i * 2654435761u;
}

static int upload(int port, const char *body, size_t length) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        if (s >= 0) close(s);
        return 0;
    }
    char head[256];
    int n = snprintf(head, sizeof head,
                     "POST /push.v1.PusherService/Push HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Type: application/proto\r\nContent-Length: %zu\r\n\r\n",
                     port, length);
    int status = 0;
    if (write(s, head, n) == n && write(s, body, length) == (ssize_t)length) {
        char answer[512];
        ssize_t got = read(s, answer, sizeof answer - 1);
        if (got > 12) {
            answer[got] = 0;
            sscanf(answer, "HTTP/1.%*d %d", &status);
        }
    }
    close(s);
    return status;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: standin_runtime INIT_MS INVOKE_MS UPLOAD_PORT BODY_FILE\n");
        return 2;
    }
    double init_ms = atof(argv[1]), invoke_ms = atof(argv[2]);
    int port = atoi(argv[3]);
    static char body[1 << 20];
    size_t length = 0;
    FILE *f = fopen(argv[4], "rb");
    if (f) {
        length = fread(body, 1, sizeof body, f);
        fclose(f);
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    burn(init_ms);
    printf("ready\n");
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "invoke", 6) == 0) {
            burn(invoke_ms);
            printf("done %d\n", port ? upload(port, body, length) : 200);
        } else if (strncmp(line, "exit", 4) == 0) {
            break;
        }
    }
    return 0;
}
