/* Start-up timer: exec a server, then connect to 127.0.0.1:PORT in a tight loop until
 * a connection is accepted; prints the elapsed microseconds (CLOCK_MONOTONIC, taken just
 * before fork) and then SIGTERMs the child and reaps it.
 *
 *   startup PORT prog [args...]      (environment is passed through)
 *   startup --listen PORT            (act as the trivial server: bind, listen, pause;
 *                                     used to measure the harness's own floor)
 *   startup --lambda HOLD_MS prog [args...]
 *                                    (a Lambda extension's life on a fake Extensions API:
 *                                     see lambda_life.c)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int lambda_life(int hold_ms, char **argv);

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "--listen") == 0) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16)) { perror("listen"); return 1; }
        for (;;) pause();
    }
    if (argc >= 4 && strcmp(argv[1], "--lambda") == 0) return lambda_life(atoi(argv[2]), argv + 3);
    if (argc < 3) { fprintf(stderr, "usage: startup PORT prog [args...] | --listen PORT | --lambda HOLD_MS prog [args...]\n"); return 2; }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    double t0 = now_us();
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[2], argv + 2);
        _exit(127);
    }
    double t1 = -1;
    long attempts = 0;
    for (;;) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        attempts++;
        if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) { t1 = now_us(); close(s); break; }
        close(s);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) { fprintf(stderr, "child exited early\n"); return 1; }
        if (now_us() - t0 > 10e6) { fprintf(stderr, "timeout\n"); kill(pid, SIGKILL); return 1; }
    }
    kill(pid, SIGTERM);
    int st;
    double t2 = now_us();
    for (;;) {
        if (waitpid(pid, &st, WNOHANG) == pid) break;
        if (now_us() - t2 > 5e6) { kill(pid, SIGKILL); waitpid(pid, &st, 0); break; }
        usleep(1000);
    }
    printf("{\"startup_us\":%.1f,\"connect_attempts\":%ld}\n", t1 - t0, attempts);
    return 0;
}
