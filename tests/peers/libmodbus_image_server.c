/*
 * A Modbus TCP server we did not write the protocol side of, serving any register image:
 * libmodbus 3.1 frames and answers the requests, this file only loads the image. Tests
 * write the image from a template's map (tests/integration/test_templates_libmodbus.py),
 * so a template is read end to end through a peer that shares no code with edge-agent.
 *
 * Usage: libmodbus_image_server PORT|TTY IMAGE [STATE]
 *   PORT: Modbus TCP on 127.0.0.1 (one client at a time); TTY (a path, e.g. one end of a
 *   socat pty pair): Modbus RTU at 19200 8N1 for the one unit in the image.
 *   STATE: the server takes writes (libmodbus' modbus_reply: functions 5, 6, 15, 16, 22)
 *   and, after every request, appends "UNIT FUNCTION ADDRESS COUNT" to STATE.log and
 *   rewrites STATE (via STATE.tmp, renamed) with the image as it now is, in the IMAGE
 *   format: what the server holds, read without asking it over Modbus.
 *
 * IMAGE has one line per register or bit: "UNIT TABLE ADDRESS VALUE", TABLE one of
 * coil, discrete_input, holding, input; ADDRESS 0-based; VALUE 0..65535 (0/1 for bits).
 * A read (or write) that touches an address missing from the image answers exception 2
 * (illegal data address), as real meters do for holes; a unit id missing from the image
 * gets no answer at all.
 */
#include <errno.h>
#include <modbus.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNITS 256
#define SPACE 65536

enum { COIL, DISCRETE, HOLDING, INPUT, TABLES };

typedef struct {
    modbus_mapping_t *map;
    uint8_t *present[TABLES]; /* 1 where the image holds the address */
} unit_t;

static unit_t units[UNITS];

static int table_of(const char *name) {
    if (strcmp(name, "coil") == 0) return COIL;
    if (strcmp(name, "discrete_input") == 0) return DISCRETE;
    if (strcmp(name, "holding") == 0) return HOLDING;
    if (strcmp(name, "input") == 0) return INPUT;
    return -1;
}

static unit_t *unit_for(int id) {
    unit_t *unit = &units[id];
    if (unit->map == NULL) {
        unit->map = modbus_mapping_new(SPACE, SPACE, SPACE, SPACE);
        for (int t = 0; t < TABLES; t++) unit->present[t] = calloc(SPACE, 1);
        if (unit->map == NULL) {
            fprintf(stderr, "out of memory for unit %d\n", id);
            exit(1);
        }
    }
    return unit;
}

static int load_image(const char *path) {
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        perror(path);
        return -1;
    }
    char name[32];
    int id, address;
    long value;
    int line = 0;
    while (fscanf(file, "%d %31s %d %ld", &id, name, &address, &value) == 4) {
        line++;
        int table = table_of(name);
        if (id < 0 || id >= UNITS || table < 0 || address < 0 || address >= SPACE ||
            value < 0 || value > 65535) {
            fprintf(stderr, "%s:%d: bad entry\n", path, line);
            fclose(file);
            return -1;
        }
        unit_t *unit = unit_for(id);
        unit->present[table][address] = 1;
        switch (table) {
            case COIL: unit->map->tab_bits[address] = (uint8_t)(value != 0); break;
            case DISCRETE: unit->map->tab_input_bits[address] = (uint8_t)(value != 0); break;
            case HOLDING: unit->map->tab_registers[address] = (uint16_t)value; break;
            default: unit->map->tab_input_registers[address] = (uint16_t)value; break;
        }
    }
    fclose(file);
    return 0;
}

/* The table a function code reads or writes, or -1 for anything else (libmodbus answers it). */
static int table_for(int function) {
    switch (function) {
        case MODBUS_FC_READ_COILS:
        case MODBUS_FC_WRITE_SINGLE_COIL:
        case MODBUS_FC_WRITE_MULTIPLE_COILS: return COIL;
        case MODBUS_FC_READ_DISCRETE_INPUTS: return DISCRETE;
        case MODBUS_FC_READ_HOLDING_REGISTERS:
        case MODBUS_FC_WRITE_SINGLE_REGISTER:
        case MODBUS_FC_WRITE_MULTIPLE_REGISTERS:
        case MODBUS_FC_MASK_WRITE_REGISTER: return HOLDING;
        case MODBUS_FC_READ_INPUT_REGISTERS: return INPUT;
        default: return -1;
    }
}

/* Addresses a request touches: the quantity field, or 1 for the single writes. */
static int touched(int function, int count) {
    switch (function) {
        case MODBUS_FC_WRITE_SINGLE_COIL:
        case MODBUS_FC_WRITE_SINGLE_REGISTER:
        case MODBUS_FC_MASK_WRITE_REGISTER: return 1;
        default: return count;
    }
}

static int all_present(const unit_t *unit, int table, int address, int count) {
    for (int a = address; a < address + count; a++) {
        if (a >= SPACE || !unit->present[table][a]) return 0;
    }
    return 1;
}

static const char *TABLE_NAMES[TABLES] = {"coil", "discrete_input", "holding", "input"};

static void save_state(const char *state) {
    char temporary[4096];
    snprintf(temporary, sizeof temporary, "%s.tmp", state);
    FILE *file = fopen(temporary, "w");
    if (file == NULL) return;
    for (int id = 0; id < UNITS; id++) {
        const unit_t *unit = &units[id];
        if (unit->map == NULL) continue;
        for (int t = 0; t < TABLES; t++) {
            for (int a = 0; a < SPACE; a++) {
                if (!unit->present[t][a]) continue;
                long value;
                switch (t) {
                    case COIL: value = unit->map->tab_bits[a]; break;
                    case DISCRETE: value = unit->map->tab_input_bits[a]; break;
                    case HOLDING: value = unit->map->tab_registers[a]; break;
                    default: value = unit->map->tab_input_registers[a]; break;
                }
                fprintf(file, "%d %s %d %ld\n", id, TABLE_NAMES[t], a, value);
            }
        }
    }
    fclose(file);
    rename(temporary, state);
}

static void log_request(const char *state, int id, int function, int address, int count) {
    char path[4096];
    snprintf(path, sizeof path, "%s.log", state);
    FILE *file = fopen(path, "a");
    if (file == NULL) return;
    fprintf(file, "%d %d %d %d\n", id, function, address, count);
    fclose(file);
}

static int first_unit(void) {
    for (int id = 0; id < UNITS; id++) {
        if (units[id].map != NULL) return id;
    }
    return -1;
}

/* Answer requests until the client leaves (TCP) or the line goes away (RTU). */
static void serve(modbus_t *ctx, const char *state) {
    int header = modbus_get_header_length(ctx);
    for (;;) {
        uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
        int length = modbus_receive(ctx, query);
        if (length == -1) {
            if (errno == EMBBADCRC || errno == EMBBADDATA) continue; /* garbage on a line */
            return;
        }
        if (length == 0) continue;
        int id = query[header - 1];
        int function = query[header];
        int address = (query[header + 1] << 8) | query[header + 2];
        int count = (query[header + 3] << 8) | query[header + 4];
        unit_t *unit = &units[id];
        if (unit->map == NULL) continue; /* not in the image: silence */
        if (state != NULL) log_request(state, id, function, address, count);
        int table = table_for(function);
        if (table >= 0 && !all_present(unit, table, address, touched(function, count))) {
            modbus_reply_exception(ctx, query, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
        } else {
            modbus_reply(ctx, query, length, unit->map);
        }
        if (state != NULL) save_state(state);
    }
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s PORT|TTY IMAGE [STATE]\n", argv[0]);
        return 2;
    }
    if (load_image(argv[2]) != 0) return 1;
    const char *state = argc == 4 ? argv[3] : NULL;
    if (argv[1][0] == '/') {
        modbus_t *ctx = modbus_new_rtu(argv[1], 19200, 'N', 8, 1);
        if (ctx == NULL || modbus_set_slave(ctx, first_unit()) == -1 || modbus_connect(ctx) == -1) {
            fprintf(stderr, "cannot serve RTU on %s: %s\n", argv[1], modbus_strerror(errno));
            return 1;
        }
        if (state != NULL) save_state(state); /* the line is open: tell the test */
        printf("serving RTU on %s\n", argv[1]);
        fflush(stdout);
        serve(ctx, state);
        modbus_close(ctx);
        modbus_free(ctx);
        return 0;
    }
    int port = atoi(argv[1]);
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
    if (ctx == NULL) {
        fprintf(stderr, "cannot allocate the context\n");
        return 1;
    }
    int server = modbus_tcp_listen(ctx, 1);
    if (server == -1) {
        fprintf(stderr, "listen on 127.0.0.1:%d failed: %s\n", port, modbus_strerror(errno));
        return 1;
    }
    if (state != NULL) save_state(state);
    printf("listening on 127.0.0.1:%d\n", port);
    fflush(stdout);
    for (;;) {
        if (modbus_tcp_accept(ctx, &server) == -1) continue;
        serve(ctx, state);
        modbus_close(ctx);
    }
}
