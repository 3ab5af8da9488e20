/*  busd-keygen — write a CURVE key pair as czmq certificates.

    The broker's server key, and each client's key, come from here: NAME.key
    (public: copy it to the broker's curve_clients_dir, or give it to
    clients as --curve-server-key) and NAME.key_secret (keep it private:
    curve_server_cert, or a client's --curve-cert).  czmq's own format, so
    zauth-style tooling and pyzmq's zmq.auth read the same files.            */
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

static void
s_usage (FILE *out)
{
    fprintf (out,
"Usage: busd-keygen [OPTION]... NAME\n"
"Write a CURVE key pair for busd as czmq certificates: DIR/NAME.key (the\n"
"public key) and DIR/NAME.key_secret (the secret key, mode 0600).\n\n"
"  -d, --dir DIR      where to write them (default: the current directory)\n"
"  -f, --force        replace existing files\n"
"  -h, --help         show this help and exit\n"
"  -V, --version      show the version and exit\n\n"
"The broker: curve_server_cert = DIR/NAME.key_secret; clients get DIR/NAME.key\n"
"(--curve-server-key).  A client: --curve-cert DIR/NAME.key_secret; the broker's\n"
"curve_clients_dir gets DIR/NAME.key, and NAME becomes its ACL identity.\n"
"Prints the public key (Z85).  See doc/security.md.\n\n"
"Exit status: 0 written, 1 cannot write, 2 usage error.\n");
}

int
main (int argc, char **argv)
{
    const char *dir = ".";
    bool force = false;
    static const struct option longopts [] = {
        { "dir", required_argument, NULL, 'd' },
        { "force", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    int opt;
    while ((opt = getopt_long (argc, argv, "d:fhV", longopts, NULL)) != -1) {
        switch (opt) {
            case 'd': dir = optarg; break;
            case 'f': force = true; break;
            case 'h': s_usage (stdout); return 0;
            case 'V': printf ("busd-keygen (busd) %s\n", PACKAGE_VERSION); return 0;
            default:
                fprintf (stderr, "Try 'busd-keygen --help' for more information.\n");
                return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf (stderr, "busd-keygen: give exactly one NAME (see busd-keygen --help)\n");
        return EXIT_USAGE;
    }
    const char *name = argv [optind];
    //  The name is a file name and an ACL identity: printable, no slashes.
    size_t len = strlen (name);
    bool ok = len > 0 && len <= 200 && name [0] != '.';
    for (size_t i = 0; ok && i < len; i++)
        ok = name [i] > 0x20 && name [i] < 0x7F && name [i] != '/';
    if (!ok) {
        fprintf (stderr, "busd-keygen: NAME must be 1..200 printable characters without '/' "
                         "or a leading '.'\n");
        return EXIT_USAGE;
    }
    char public_path [4096], secret_path [4200];
    snprintf (public_path, sizeof public_path, "%s/%s.key", dir, name);
    snprintf (secret_path, sizeof secret_path, "%s_secret", public_path);
    struct stat st;
    if (!force && (stat (public_path, &st) == 0 || stat (secret_path, &st) == 0)) {
        fprintf (stderr, "busd-keygen: %s exists; use --force to replace it\n", public_path);
        return EXIT_RUNTIME;
    }
    zsys_handler_set (NULL);
    zcert_t *cert = zcert_new ();
    if (!cert) {
        fprintf (stderr, "busd-keygen: cannot make a key pair (libzmq without CURVE?)\n");
        return EXIT_RUNTIME;
    }
    zcert_set_meta (cert, "name", "%s", name);
    zcert_set_meta (cert, "created-by", "busd-keygen %s", PACKAGE_VERSION);
    //  zcert_save writes the secret file 0600 itself.
    if (zcert_save (cert, public_path)) {
        fprintf (stderr, "busd-keygen: cannot write %s: %s\n", public_path, strerror (errno));
        zcert_destroy (&cert);
        return EXIT_RUNTIME;
    }
    chmod (secret_path, 0600);
    printf ("%s\n", zcert_public_txt (cert));
    zcert_destroy (&cert);
    return 0;
}
