/*
 * A Modbus TCP server we did not write the protocol side of: libmodbus 3.1 answers the
 * requests, this file only holds a known register map for the commissioning tests
 * (tests/integration/test_commissioning_libmodbus.py, which compiles it).
 *
 * Usage: libmodbus_server PORT   (listens on 127.0.0.1 only; serves one client at a time)
 *
 * Unit 1, input registers (0-based protocol addresses):
 *    0-1   230.1 float32 ABCD          (voltage L1)
 *    2-3   231.4 float32 CDAB          (voltage L2, word swapped)
 *    4     2325  uint16, x0.1 = 232.5  (voltage L3)
 *    5     -120  int16                 (a temperature x0.1 = -12.0)
 *    6-9   hole: exception 2 (illegal data address)
 *   10-11  123456789 uint32 ABCD       (energy counter)
 *   12-    nothing (exception 2: outside the map)
 * Unit 1, holding registers 0-3: 1 2 3 4; coils 0-7: 1 0 1 1 0 0 0 1.
 * Unit 7, holding registers 0-1: 0.93 float32 ABCD (a power factor); nothing else.
 * Any other unit id: no answer at all (a device that ignores other ids).
 *
 * Floats are put into registers by hand (memcpy of the IEEE bits): libmodbus' float
 * helpers gave wrong results on the test host.
 */
#include <errno.h>
#include <modbus.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint32_t float_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

static void put_abcd(uint16_t *regs, float value) {
    uint32_t bits = float_bits(value);
    regs[0] = (uint16_t)(bits >> 16);
    regs[1] = (uint16_t)(bits & 0xFFFF);
}

static void put_cdab(uint16_t *regs, float value) {
    uint32_t bits = float_bits(value);
    regs[0] = (uint16_t)(bits & 0xFFFF);
    regs[1] = (uint16_t)(bits >> 16);
}

/* True when a read of input registers [address, address + count) touches the hole. */
static int touches_hole(int address, int count) {
    return address < 10 && address + count > 6;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
    modbus_mapping_t *unit1 = modbus_mapping_new(8, 0, 4, 12);
    modbus_mapping_t *unit7 = modbus_mapping_new(0, 0, 2, 0);
    if (ctx == NULL || unit1 == NULL || unit7 == NULL) {
        fprintf(stderr, "cannot allocate the context or the maps\n");
        return 1;
    }
    put_abcd(&unit1->tab_input_registers[0], 230.1f);
    put_cdab(&unit1->tab_input_registers[2], 231.4f);
    unit1->tab_input_registers[4] = 2325;
    unit1->tab_input_registers[5] = (uint16_t)(int16_t)-120;
    unit1->tab_input_registers[10] = (uint16_t)(123456789u >> 16);
    unit1->tab_input_registers[11] = (uint16_t)(123456789u & 0xFFFF);
    for (int i = 0; i < 4; i++) unit1->tab_registers[i] = (uint16_t)(i + 1);
    const uint8_t coils[8] = {1, 0, 1, 1, 0, 0, 0, 1};
    memcpy(unit1->tab_bits, coils, sizeof coils);
    put_abcd(&unit7->tab_registers[0], 0.93f);

    int server = modbus_tcp_listen(ctx, 1);
    if (server == -1) {
        fprintf(stderr, "listen on 127.0.0.1:%d failed: %s\n", port, modbus_strerror(errno));
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", port);
    fflush(stdout);
    int header = modbus_get_header_length(ctx);
    for (;;) {
        if (modbus_tcp_accept(ctx, &server) == -1) continue;
        for (;;) {
            uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
            int length = modbus_receive(ctx, query);
            if (length == -1) break; /* the client left: wait for the next one */
            if (length == 0) continue;
            int unit = query[header - 1];
            int function = query[header];
            int address = (query[header + 1] << 8) | query[header + 2];
            int count = (query[header + 3] << 8) | query[header + 4];
            if (unit == 1) {
                if (function == MODBUS_FC_READ_INPUT_REGISTERS && touches_hole(address, count)) {
                    modbus_reply_exception(ctx, query, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
                } else {
                    modbus_reply(ctx, query, length, unit1);
                }
            } else if (unit == 7) {
                modbus_reply(ctx, query, length, unit7);
            }
            /* any other unit id: silence */
        }
        modbus_close(ctx);
    }
}
