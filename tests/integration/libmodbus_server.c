/* A Modbus server on libmodbus (Debian's libmodbus-dev): an implementation lineside does
 * not otherwise use, for the driver tests. Built by tests/integration/libmodbus.py.
 *
 *   libmodbus_server tcp PORT            (PORT 0: any free port, printed on "ready PORT")
 *   libmodbus_server rtu DEVICE UNIT     (a serial device or pty, 115200 8N1)
 *
 * Commands on stdin, one a line, each answered on stdout by "ok [VALUE]" or "error ...":
 *   set TABLE ADDR VALUE      one register (holding, input) or bit (coil, discrete)
 *   get TABLE ADDR
 *   set32 TABLE ADDR VALUE    a uint32 over two registers, high word first
 *   get32 TABLE ADDR
 *   add32 TABLE ADDR DELTA    add to a uint32, wrapping at 2^32
 *   delay MS                  every answer waits MS before it is sent
 *   late MS EVERY             and every EVERYth answer waits MS instead (EVERY 0: never)
 *   exception CODE            answer every request with this exception code (0: off)
 *   answers                   how many answers were sent
 * Requests are served one at a time, as a device does: a request that arrives while an
 * answer waits is read after it.
 */
#include <errno.h>
#include <modbus.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#define SIZE 1000

static modbus_mapping_t *map;
static long delay_ms = 0, late_ms = 0, late_every = 0, answers = 0;
static int exception_code = 0;

static uint16_t *registers(const char *table) {
    if (strcmp(table, "holding") == 0) return map->tab_registers;
    if (strcmp(table, "input") == 0) return map->tab_input_registers;
    return NULL;
}

static uint8_t *bits(const char *table) {
    if (strcmp(table, "coil") == 0) return map->tab_bits;
    if (strcmp(table, "discrete") == 0) return map->tab_input_bits;
    return NULL;
}

static void command(char *line) {
    char verb[16] = "", table[16] = "";
    unsigned long addr = 0;
    long long value = 0;
    int n = sscanf(line, "%15s %15s %lu %lld", verb, table, &addr, &value);
    uint16_t *regs = n >= 3 ? registers(table) : NULL;
    uint8_t *bit = n >= 3 ? bits(table) : NULL;
    if (n >= 3 && addr + 1 >= SIZE) {
        printf("error address %lu\n", addr);
    } else if (strcmp(verb, "set") == 0 && n == 4 && (regs || bit)) {
        if (regs) regs[addr] = (uint16_t)value; else bit[addr] = value ? 1 : 0;
        printf("ok\n");
    } else if (strcmp(verb, "get") == 0 && n == 3 && (regs || bit)) {
        printf("ok %d\n", regs ? regs[addr] : bit[addr]);
    } else if ((strcmp(verb, "set32") == 0 || strcmp(verb, "add32") == 0) && n == 4 && regs) {
        uint32_t now = ((uint32_t)regs[addr] << 16) | regs[addr + 1];
        uint32_t next = verb[0] == 's' ? (uint32_t)value : now + (uint32_t)value;
        regs[addr] = next >> 16;
        regs[addr + 1] = next & 0xFFFF;
        printf("ok %u\n", next);
    } else if (strcmp(verb, "get32") == 0 && n == 3 && regs) {
        printf("ok %u\n", ((uint32_t)regs[addr] << 16) | regs[addr + 1]);
    } else if (strcmp(verb, "delay") == 0 && sscanf(line, "%*s %ld", &delay_ms) == 1) {
        printf("ok\n");
    } else if (strcmp(verb, "late") == 0 && sscanf(line, "%*s %ld %ld", &late_ms, &late_every) == 2) {
        printf("ok\n");
    } else if (strcmp(verb, "exception") == 0 && sscanf(line, "%*s %d", &exception_code) == 1) {
        printf("ok\n");
    } else if (strcmp(verb, "answers") == 0) {
        printf("ok %ld\n", answers);
    } else {
        printf("error unknown command: %s", line);
    }
    fflush(stdout);
}

/* One request in, one answer out (after its delay); -1 when the connection is gone. */
static int serve(modbus_t *ctx) {
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    int rc = modbus_receive(ctx, query);
    if (rc <= 0) return rc; /* 0: a request for another unit, or nothing whole */
    answers++;
    long wait = late_every > 0 && answers % late_every == 0 ? late_ms : delay_ms;
    if (wait > 0) usleep((useconds_t)wait * 1000);
    if (exception_code) return modbus_reply_exception(ctx, query, exception_code) < 0 ? -1 : 0;
    return modbus_reply(ctx, query, rc, map) < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s tcp PORT | rtu DEVICE UNIT\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    map = modbus_mapping_new(SIZE, SIZE, SIZE, SIZE);
    int tcp = strcmp(argv[1], "tcp") == 0;
    modbus_t *ctx = tcp ? modbus_new_tcp("127.0.0.1", atoi(argv[2]))
                        : modbus_new_rtu(argv[2], 115200, 'N', 8, 1);
    if (ctx == NULL || map == NULL) {
        fprintf(stderr, "cannot set up: %s\n", modbus_strerror(errno));
        return 1;
    }
    int listener = -1, client = -1;
    if (tcp) {
        listener = modbus_tcp_listen(ctx, 1);
        struct sockaddr_in bound;
        socklen_t len = sizeof bound;
        if (listener < 0 || getsockname(listener, (struct sockaddr *)&bound, &len) < 0) {
            fprintf(stderr, "cannot listen: %s\n", modbus_strerror(errno));
            return 1;
        }
        printf("ready %d\n", ntohs(bound.sin_port));
    } else {
        modbus_set_slave(ctx, atoi(argv[3]));
        if (modbus_connect(ctx) < 0) {
            fprintf(stderr, "cannot open %s: %s\n", argv[2], modbus_strerror(errno));
            return 1;
        }
        client = modbus_get_socket(ctx);
        printf("ready\n");
    }
    char line[256];
    for (;;) {
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(0, &fds);
        int top = 0;
        /* one connection at a time, as many small PLCs do: the next waits in the backlog */
        int watch = client >= 0 ? client : listener;
        FD_SET(watch, &fds);
        top = watch;
        if (select(top + 1, &fds, NULL, NULL, NULL) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (FD_ISSET(0, &fds)) {
            if (fgets(line, sizeof line, stdin) == NULL) return 0; /* stdin closed: stop */
            command(line);
        }
        if (FD_ISSET(watch, &fds)) {
            if (client < 0) {
                client = modbus_tcp_accept(ctx, &listener);
            } else if (serve(ctx) < 0 && tcp) {
                close(client);
                client = -1;
            }
        }
    }
}
