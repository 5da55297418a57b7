/* The PCRE2 side of the @rx differential test (waf/examples/rx_pcre_diff.rs): compiles each
 * pattern as ModSecurity v3 does (PCRE2_DOTALL | PCRE2_MULTILINE, 8-bit, no UTF) and prints
 * "PATTERN INPUT START END" for every match, "PATTERN ERR offset" for a compile error.
 * Declares the few PCRE2 entry points itself so only the runtime library is needed:
 *   cc -O2 -o pcre2_oracle waf/tools/pcre2_oracle.c /usr/lib/x86_64-linux-gnu/libpcre2-8.so.0
 *   ./pcre2_oracle patterns.hex inputs.hex > pcre2.out
 * Both files: one hex-encoded byte string per line (patterns: "RULE HEX"). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pcre2_real_code_8 pcre2_code;
typedef struct pcre2_real_match_data_8 pcre2_match_data;
pcre2_code *pcre2_compile_8(const unsigned char *, size_t, uint32_t, int *, size_t *, void *);
pcre2_match_data *pcre2_match_data_create_from_pattern_8(const pcre2_code *, void *);
int pcre2_match_8(const pcre2_code *, const unsigned char *, size_t, size_t, uint32_t,
                  pcre2_match_data *, void *);
size_t *pcre2_get_ovector_pointer_8(pcre2_match_data *);
void pcre2_code_free_8(pcre2_code *);
void pcre2_match_data_free_8(pcre2_match_data *);

#define PCRE2_DOTALL 0x00000020u
#define PCRE2_MULTILINE 0x00000400u

static size_t unhex(const char *hex, unsigned char *out) {
    size_t n = 0;
    while (hex[0] && hex[1] && hex[0] != '\n') {
        unsigned int b;
        sscanf(hex, "%2x", &b);
        out[n++] = (unsigned char)b;
        hex += 2;
    }
    return n;
}

static char *read_all(const char *path, size_t *lines) {
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(len + 1);
    if (fread(buf, 1, len, f) != (size_t)len) { perror(path); exit(2); }
    buf[len] = 0;
    fclose(f);
    *lines = 0;
    for (long i = 0; i < len; i++) if (buf[i] == '\n') (*lines)++;
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s patterns.hex inputs.hex\n", argv[0]); return 2; }
    size_t np, ni;
    char *pats = read_all(argv[1], &np), *ins = read_all(argv[2], &ni);
    unsigned char **input = malloc(ni * sizeof *input);
    size_t *input_len = malloc(ni * sizeof *input_len);
    char *line = ins;
    for (size_t i = 0; i < ni; i++) {
        input[i] = malloc(strlen(line) / 2 + 1);
        input_len[i] = unhex(line, input[i]);
        line = strchr(line, '\n') + 1;
    }
    unsigned char *pattern = malloc(1 << 20);
    line = pats;
    for (size_t p = 0; p < np; p++) {
        char *hex = strchr(line, ' ') + 1;
        size_t plen = unhex(hex, pattern);
        line = strchr(line, '\n') + 1;
        int err;
        size_t erroff;
        pcre2_code *re = pcre2_compile_8(pattern, plen, PCRE2_DOTALL | PCRE2_MULTILINE, &err,
                                         &erroff, NULL);
        if (!re) { printf("%zu ERR %zu\n", p, erroff); continue; }
        pcre2_match_data *md = pcre2_match_data_create_from_pattern_8(re, NULL);
        for (size_t i = 0; i < ni; i++) {
            int rc = pcre2_match_8(re, input[i], input_len[i], 0, 0, md, NULL);
            if (rc > 0) {
                size_t *ov = pcre2_get_ovector_pointer_8(md);
                printf("%zu %zu %zu %zu\n", p, i, ov[0], ov[1]);
            } else if (rc < -1) {
                printf("%zu %zu LIMIT %d\n", p, i, rc);
            }
        }
        pcre2_match_data_free_8(md);
        pcre2_code_free_8(re);
    }
    return 0;
}
