/* Runs transformations through libmodsecurity, for waf/tests/transform_modsecurity.rs.
 * stdin: lines "t:name HEXINPUT"; stdout: one line per input, the transformed value in hex
 * (ModSecurity's own t:hexEncode is appended, so NUL and binary bytes survive the log
 * message), or "ERR ..." when the rule does not load, or "NOMATCH". */
#include <modsecurity/modsecurity.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char result[1 << 20];
static int got;

/* The rule's msg is "R:<hex>:R"; pick it out of the log line. */
static void on_log(void *data, const void *msg) {
    (void)data;
    const char *s = (const char *)msg;
    const char *p = strstr(s, "[msg \"R:");
    if (!p) return;
    p += 8;
    const char *e = strstr(p, ":R\"]");
    if (!e || (size_t)(e - p) >= sizeof result) return;
    memcpy(result, p, (size_t)(e - p));
    result[e - p] = 0;
    got = 1;
}

static int unhex(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

int main(void) {
    ModSecurity *ms = msc_init();
    msc_set_log_cb(ms, on_log);
    static char line[1 << 17];
    static unsigned char in[1 << 16];
    char current[256] = "";
    RulesSet *rules = NULL;
    while (fgets(line, sizeof line, stdin)) {
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        *sp = 0;
        char *hex = sp + 1;
        hex[strcspn(hex, "\r\n")] = 0;
        if (strcmp(current, line) != 0) {
            snprintf(current, sizeof current, "%s", line);
            if (rules) msc_rules_cleanup(rules);
            rules = msc_create_rules_set();
            const char *err = NULL;
            char rule[1024];
            snprintf(rule, sizeof rule,
                     "SecRuleEngine On\n"
                     "SecRule REQUEST_HEADERS:x \"@rx (?s)^(.*)$\" \"id:1,phase:1,t:none,%s,"
                     "t:hexEncode,capture,log,pass,msg:'R:%%{TX.0}:R'\"\n",
                     line);
            if (msc_rules_add(rules, rule, &err) < 0) {
                printf("ERR %s\n", err ? err : "?");
                fflush(stdout);
                current[0] = 0;
                continue;
            }
        }
        size_t n = strlen(hex) / 2;
        if (n > sizeof in) n = sizeof in;
        for (size_t i = 0; i < n; i++) in[i] = (unsigned char)(unhex(hex[2 * i]) * 16 + unhex(hex[2 * i + 1]));
        Transaction *t = msc_new_transaction(ms, rules, NULL);
        got = 0;
        msc_process_connection(t, "192.0.2.1", 1234, "192.0.2.2", 80);
        msc_process_uri(t, "/", "GET", "1.1");
        msc_add_n_request_header(t, (const unsigned char *)"x", 1, in, n);
        msc_process_request_headers(t);
        printf("%s\n", got ? result : "NOMATCH");
        fflush(stdout);
        msc_transaction_cleanup(t);
    }
    return 0;
}
