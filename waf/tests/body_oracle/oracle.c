/* A request through libmodsecurity 3.0.9, for checking the body parsers by hand (see run.sh).
 * usage: oracle RULES-FILE URI CONTENT-TYPE BODY-FILE [COOKIE-HEADER]
 * An empty CONTENT-TYPE sends no Content-Type header. */
#include <modsecurity/modsecurity.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, size_t *size) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        *size = 0;
        return strdup("");
    }
    fseek(file, 0, SEEK_END);
    long length = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *data = malloc(length > 0 ? (size_t)length + 1 : 1);
    *size = length > 0 ? fread(data, 1, (size_t)length, file) : 0;
    data[*size] = 0;
    fclose(file);
    return data;
}

static void log_line(void *data, const void *message) {
    (void)data;
    printf("LOG %s\n", (const char *)message);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s RULES-FILE URI CONTENT-TYPE BODY-FILE [COOKIE-HEADER]\n", argv[0]);
        return 2;
    }
    ModSecurity *modsec = msc_init();
    msc_set_log_cb(modsec, log_line);
    RulesSet *rules = msc_create_rules_set();
    const char *error = NULL;
    if (msc_rules_add_file(rules, argv[1], &error) < 0) {
        printf("ERR %s\n", error);
        return 1;
    }
    Transaction *tx = msc_new_transaction(modsec, rules, NULL);
    msc_process_connection(tx, "127.0.0.1", 1234, "127.0.0.1", 80);
    msc_process_uri(tx, argv[2], "POST", "1.1");
    msc_add_request_header(tx, (const unsigned char *)"Host", (const unsigned char *)"localhost");
    if (argv[3][0] != 0) {
        msc_add_request_header(tx, (const unsigned char *)"Content-Type", (const unsigned char *)argv[3]);
    }
    if (argc > 5) {
        msc_add_request_header(tx, (const unsigned char *)"Cookie", (const unsigned char *)argv[5]);
    }
    msc_process_request_headers(tx);
    size_t size;
    char *body = read_file(argv[4], &size);
    msc_append_request_body(tx, (unsigned char *)body, size);
    msc_process_request_body(tx);
    msc_process_logging(tx);
    msc_transaction_cleanup(tx);
    msc_rules_cleanup(rules);
    msc_cleanup(modsec);
    free(body);
    return 0;
}
