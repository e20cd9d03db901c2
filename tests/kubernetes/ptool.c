/* ptool: the whole "user image" of the Kubernetes runner's tests, built with `gcc -static`.
 *
 * The image holds this one binary and nothing else: no shell, no Python, no libc to share, no
 * coreutils. It stands for the minimal images real users ship (distroless, scratch + Go binary), in
 * which our shim must still run cmd per datum. It is deliberately not a shell: it cannot run scripts
 * and knows only these commands:
 *
 *   ptool upper SRC DST   copy every file below SRC (following symlinks) to the same relative path
 *                         below DST, uppercased; exit 3 when a file holds the word FAIL
 *   ptool exit N          exit with status N (for err_cmd and accept_return_code)
 *   ptool stdin DST       copy standard input to the file DST
 *   ptool env DST         write the environment, one VAR=value per line, to the file DST
 *   ptool sleep N         sleep N seconds (for datum_timeout)
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

static int mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) return -1;
            *p = '/';
        }
    }
    if (mkdir(buf, 0777) && errno != EEXIST) return -1;
    return 0;
}

static int failed = 0;

static int upper_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb");
    if (!in) { perror(src); return -1; }
    FILE *out = fopen(dst, "wb");
    if (!out) { perror(dst); fclose(in); return -1; }
    char buf[65536];
    size_t n;
    /* look for FAIL across buffer boundaries too */
    char tail[4] = {0};
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        char window[sizeof tail + sizeof buf];
        memcpy(window, tail, 3);
        memcpy(window + 3, buf, n);
        for (size_t i = 0; i + 4 <= n + 3; i++)
            if (memcmp(window + i, "FAIL", 4) == 0) failed = 1;
        memcpy(tail, window + n, 3);
        for (size_t i = 0; i < n; i++) buf[i] = (char)toupper((unsigned char)buf[i]);
        fwrite(buf, 1, n, out);
    }
    fclose(in);
    return fclose(out);
}

static int upper_tree(const char *src, const char *dst) {
    struct stat st;
    if (stat(src, &st)) { perror(src); return -1; }
    if (!S_ISDIR(st.st_mode)) return upper_file(src, dst);
    if (mkdirs(dst)) { perror(dst); return -1; }
    DIR *d = opendir(src);
    if (!d) { perror(src); return -1; }
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char s[4096], t[4096];
        snprintf(s, sizeof s, "%s/%s", src, e->d_name);
        snprintf(t, sizeof t, "%s/%s", dst, e->d_name);
        if (upper_tree(s, t)) rc = -1;
    }
    closedir(d);
    return rc;
}

static int copy_stream(FILE *in, const char *dst) {
    FILE *out = fopen(dst, "wb");
    if (!out) { perror(dst); return 1; }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    return fclose(out) ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "upper")) {
        if (upper_tree(argv[2], argv[3])) return 1;
        if (failed) { fprintf(stderr, "ptool: FAIL found below %s\n", argv[2]); return 3; }
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "exit")) return atoi(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "stdin")) return copy_stream(stdin, argv[2]);
    if (argc == 3 && !strcmp(argv[1], "sleep")) { sleep((unsigned)atoi(argv[2])); return 0; }
    if (argc == 3 && !strcmp(argv[1], "env")) {
        FILE *out = fopen(argv[2], "w");
        if (!out) { perror(argv[2]); return 1; }
        for (char **e = environ; *e; e++) fprintf(out, "%s\n", *e);
        return fclose(out) ? 1 : 0;
    }
    fprintf(stderr, "usage: ptool upper SRC DST | exit N | stdin DST | env DST | sleep N\n");
    return 2;
}
