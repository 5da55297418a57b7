/* The C side of the @detectSQLi/@detectXSS differential test (waf/examples/libinjection_diff.rs):
 * runs the libinjection that libmodsecurity 3.0.9 carries (exported from libmodsecurity.so.3)
 * over hex-encoded inputs, one per line, and prints "INDEX SQLI FINGERPRINT XSS".
 *   cc -O2 -o libinjection_oracle waf/tools/libinjection_oracle.c \
 *      /usr/lib/x86_64-linux-gnu/libmodsecurity.so.3
 *   ./libinjection_oracle inputs.hex > libinjection.out */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int libinjection_sqli(const char *s, size_t slen, char fingerprint[]);
int libinjection_xss(const char *s, size_t slen);

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s inputs.hex\n", argv[0]); return 2; }
    FILE *f = fopen(argv[1], "r");
    if (!f) { perror(argv[1]); return 2; }
    static char line[1 << 16];
    static unsigned char input[1 << 15];
    size_t index = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = 0;
        for (char *p = line; p[0] && p[1] && p[0] != '\n'; p += 2) {
            unsigned int b;
            sscanf(p, "%2x", &b);
            input[n++] = (unsigned char)b;
        }
        char fingerprint[8] = {0};
        int sqli = libinjection_sqli((const char *)input, n, fingerprint);
        int xss = libinjection_xss((const char *)input, n);
        printf("%zu %d %s %d\n", index++, sqli, sqli ? fingerprint : "-", xss);
    }
    return 0;
}
