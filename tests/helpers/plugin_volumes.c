/*
 * An example managed (v2) Docker plugin: the server the e2e tests put in a plugin's
 * rootfs (tests/e2e/test_managed_plugins.py builds it with `gcc -static`).
 *
 *     volplugin SOCKET ROOT
 *
 * It serves, on the UNIX socket SOCKET and one connection at a time, HTTP/1.1 POSTs
 * of JSON for two of Docker's plugin protocols:
 * - volumes (VolumeDriver.Create/Remove/Mount/Unmount/Path/Get/List/Capabilities):
 *   each volume is a directory ROOT/NAME; the mountpoints it answers are paths inside
 *   the plugin's rootfs, as a managed plugin's are;
 * - logs (LogDriver.StartLogging/StopLogging/Capabilities): for each container a child
 *   process reads the FIFO it is given (LogEntry protocol buffers, each after its
 *   big-endian uint32 length) and appends every line to ROOT/logs/CONTAINER-ID.log,
 *   and the frames as they came to ROOT/logs/CONTAINER-ID.frames, which it answers to
 *   LogDriver.ReadLogs (all of them: no tail, since or follow);
 * - authorization (AuthZPlugin.AuthZReq/AuthZRes): every request is allowed but
 *   container creation, refused with the message "no containers today".
 * With DIE=1 in its environment it exits at once (a plugin that fails to start).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char *root;

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void answer(int fd, int status, const char *body) {
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, status == 200 ? "OK" : (status == 404 ? "Not Found" : "Internal Server Error"),
                     strlen(body));
    write_all(fd, head, (size_t)n);
    write_all(fd, body, strlen(body));
}

/* The string value of "KEY" in a JSON body (whitespace allowed around the colon);
 * only plain names ([A-Za-z0-9_.-], not starting with '.') are accepted. */
static int json_name(const char *body, const char *key, char *out, size_t size) {
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *p = strstr(body, quoted);
    if (!p) return -1;
    p += strlen(quoted);
    while (*p == ' ' || *p == '\t') p++;
    if (*p++ != ':') return -1;
    while (*p == ' ' || *p == '\t') p++;
    if (*p++ != '"') return -1;
    size_t i = 0;
    while (*p && *p != '"') {
        char c = *p++;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.'))
            return -1;
        if (i + 1 >= size) return -1;
        out[i++] = c;
    }
    out[i] = 0;
    return (i == 0 || out[0] == '.') ? -1 : 0;
}

static int volume_name(const char *body, char *out, size_t size) { return json_name(body, "Name", out, size); }

static int read_full(int fd, unsigned char *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

static unsigned long long varint(const unsigned char **p, const unsigned char *end) {
    unsigned long long v = 0;
    int shift = 0;
    while (*p < end) {
        unsigned char b = *(*p)++;
        v |= (unsigned long long)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
        shift += 7;
    }
    return v;
}

/* The child for one container: LogEntry frames from `fifo`, their lines to `out_path`,
 * the frames themselves to `frames_path`. */
static void copy_log(const char *fifo, const char *out_path, const char *frames_path) {
    int in = open(fifo, O_RDONLY);
    FILE *out = fopen(out_path, "a");
    FILE *frames = fopen(frames_path, "a");
    if (in < 0 || !out || !frames) _exit(1);
    static unsigned char msg[1 << 20];
    unsigned char head[4];
    while (read_full(in, head, 4) == 0) {
        size_t len = ((size_t)head[0] << 24) | ((size_t)head[1] << 16) | ((size_t)head[2] << 8) | head[3];
        if (len > sizeof msg || read_full(in, msg, len) != 0) break;
        fwrite(head, 1, 4, frames);
        fwrite(msg, 1, len, frames);
        fflush(frames);
        const unsigned char *p = msg, *end = msg + len;
        const unsigned char *line = NULL;
        size_t line_len = 0;
        int partial = 0;
        while (p < end) {
            unsigned long long key = varint(&p, end);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            if (wire == 0) {
                unsigned long long v = varint(&p, end);
                if (field == 4) partial = v != 0;
            } else if (wire == 2) {
                size_t n = (size_t)varint(&p, end);
                if (n > (size_t)(end - p)) break;
                if (field == 3) { line = p; line_len = n; }
                p += n;
            } else {
                break;
            }
        }
        if (line) fwrite(line, 1, line_len, out);
        fputs(partial ? " (partial)\n" : "\n", out); /* streams interleave: one entry a line */
        fflush(out);
    }
    fclose(out);
    fclose(frames);
    _exit(0);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void handle(int fd) {
    static char buf[65536];
    size_t len = 0;
    char *end = NULL;
    while (!end && len < sizeof buf - 1) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0) return;
        len += (size_t)n;
        buf[len] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end) return;
    size_t want = 0;
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl && cl < end) want = strtoul(cl + 17, NULL, 10);
    char *body = end + 4;
    while ((size_t)(buf + len - body) < want && len < sizeof buf - 1) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = 0;
    }
    char method[128] = "", target[256] = "";
    sscanf(buf, "%127s %255s", method, target);

    char name[256], path[1024], out[8192];
    if (strcmp(target, "/Plugin.Activate") == 0) {
        answer(fd, 200, "{\"Implements\":[\"VolumeDriver\"]}");
        return;
    }
    if (strcmp(target, "/VolumeDriver.Capabilities") == 0) {
        answer(fd, 200, "{\"Capabilities\":{\"Scope\":\"local\"}}");
        return;
    }
    if (strcmp(target, "/VolumeDriver.List") == 0) {
        size_t n = (size_t)snprintf(out, sizeof out, "{\"Volumes\":[");
        DIR *d = opendir(root);
        struct dirent *e;
        int first = 1;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            n += (size_t)snprintf(out + n, sizeof out - n, "%s{\"Name\":\"%s\",\"Mountpoint\":\"%s/%s\"}",
                                  first ? "" : ",", e->d_name, root, e->d_name);
            first = 0;
            if (n > sizeof out - 600) break;
        }
        if (d) closedir(d);
        snprintf(out + n, sizeof out - n, "]}");
        answer(fd, 200, out);
        return;
    }
    if (strcmp(target, "/AuthZPlugin.AuthZReq") == 0) {
        const char *uri = strstr(body, "\"RequestUri\"");
        const char *end_uri = uri ? strchr(strchr(uri + 12, '"') ? strchr(uri + 12, '"') + 1 : uri, '"') : NULL;
        int deny = 0;
        if (uri && end_uri) {
            char *create = strstr(uri, "/containers/create");
            deny = create != NULL && create < end_uri;
        }
        answer(fd, 200, deny ? "{\"Allow\":false,\"Msg\":\"no containers today\"}" : "{\"Allow\":true}");
        return;
    }
    if (strcmp(target, "/AuthZPlugin.AuthZRes") == 0) {
        answer(fd, 200, "{\"Allow\":true}");
        return;
    }
    if (strcmp(target, "/LogDriver.Capabilities") == 0) {
        answer(fd, 200, "{\"Cap\":{\"ReadLogs\":true}}");
        return;
    }
    if (strcmp(target, "/LogDriver.ReadLogs") == 0) {
        char cid[128];
        if (json_name(body, "ContainerID", cid, sizeof cid) != 0) {
            answer(fd, 500, "{\"Err\":\"ReadLogs: no ContainerID\"}");
            return;
        }
        snprintf(path, sizeof path, "%s/logs/%s.frames", root, cid);
        int f = open(path, O_RDONLY);
        struct stat fst;
        if (f < 0 || fstat(f, &fst) != 0) {
            answer(fd, 500, "{\"Err\":\"ReadLogs: no logs for that container\"}");
            if (f >= 0) close(f);
            return;
        }
        char head[256];
        int n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: application/x-json-stream\r\n"
                                            "Content-Length: %lld\r\nConnection: close\r\n\r\n",
                         (long long)fst.st_size);
        write_all(fd, head, (size_t)n);
        char chunk[8192];
        ssize_t got;
        while ((got = read(f, chunk, sizeof chunk)) > 0) write_all(fd, chunk, (size_t)got);
        close(f);
        return;
    }
    if (strcmp(target, "/LogDriver.StopLogging") == 0) {
        answer(fd, 200, "{\"Err\":\"\"}");
        return;
    }
    if (strcmp(target, "/LogDriver.StartLogging") == 0) {
        char cid[128], fifo[512], logs[1024];
        const char *f = strstr(body, "\"File\"");
        if (json_name(body, "ContainerID", cid, sizeof cid) != 0 || !f ||
            sscanf(strchr(f + 6, '"') ? strchr(f + 6, '"') + 1 : "", "%511[^\"]", fifo) != 1) {
            answer(fd, 500, "{\"Err\":\"StartLogging: no File or ContainerID\"}");
            return;
        }
        snprintf(logs, sizeof logs, "%s/logs", root);
        mkdir(logs, 0755);
        char frames[1024];
        snprintf(path, sizeof path, "%s/logs/%s.log", root, cid);
        snprintf(frames, sizeof frames, "%s/logs/%s.frames", root, cid);
        if (fork() == 0) copy_log(fifo, path, frames);
        answer(fd, 200, "{\"Err\":\"\"}");
        return;
    }
    if (strncmp(target, "/VolumeDriver.", 14) != 0) {
        answer(fd, 404, "404 page not found\n");
        return;
    }
    const char *op = target + 14;
    if (volume_name(body, name, sizeof name) != 0) {
        answer(fd, 500, "{\"Err\":\"invalid volume name\"}");
        return;
    }
    snprintf(path, sizeof path, "%s/%s", root, name);
    struct stat st;
    int exists = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (strcmp(op, "Create") == 0) {
        if (!exists && mkdir(path, 0755) != 0) {
            snprintf(out, sizeof out, "{\"Err\":\"create %s: %s\"}", name, strerror(errno));
            answer(fd, 500, out);
            return;
        }
        answer(fd, 200, "{\"Err\":\"\"}");
    } else if (!exists) {
        snprintf(out, sizeof out, "{\"Err\":\"%s %s: no such volume\"}", op, name);
        answer(fd, 500, out);
    } else if (strcmp(op, "Remove") == 0) {
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        answer(fd, 200, "{\"Err\":\"\"}");
    } else if (strcmp(op, "Mount") == 0 || strcmp(op, "Path") == 0) {
        snprintf(out, sizeof out, "{\"Mountpoint\":\"%s\",\"Err\":\"\"}", path);
        answer(fd, 200, out);
    } else if (strcmp(op, "Unmount") == 0) {
        answer(fd, 200, "{\"Err\":\"\"}");
    } else if (strcmp(op, "Get") == 0) {
        snprintf(out, sizeof out, "{\"Volume\":{\"Name\":\"%s\",\"Mountpoint\":\"%s\"},\"Err\":\"\"}", name, path);
        answer(fd, 200, out);
    } else {
        answer(fd, 404, "404 page not found\n");
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET ROOT\n", argv[0]);
        return 2;
    }
    const char *die = getenv("DIE");
    if (die && strcmp(die, "1") == 0) {
        fprintf(stderr, "volplugin: told to die (DIE=1)\n");
        return 1;
    }
    root = argv[2];
    mkdir(root, 0755);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_IGN); /* the log copiers are reaped by the kernel */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", argv[1]);
    unlink(argv[1]);
    if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s, 16) != 0) {
        perror("volplugin: listen");
        return 1;
    }
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR) continue;
            perror("volplugin: accept");
            return 1;
        }
        handle(c);
        close(c);
    }
}
