/*  check_client_security.c — unit tests for src/lib/security.c: which
    credential sets libbusd accepts (CURVE needs both keys, PLAIN both
    halves, never both mechanisms), reading czmq certificates (the _secret
    file, or the public one with the secret beside it), a Z85 server key
    given inline or as a file, and wiping the secrets.                       */
#include "security.h"

#include <check.h>
#include <czmq.h>
#include <errno.h>
#include <string.h>

static char s_dir [] = "/tmp/check_client_security.XXXXXX";
static char s_server [300], s_client [300], s_server_z85 [41];

static void
s_setup (void)
{
    ck_assert_ptr_nonnull (mkdtemp (s_dir));
    zcert_t *server = zcert_new ();
    zcert_t *client = zcert_new ();
    snprintf (s_server, sizeof s_server, "%s/server.key", s_dir);
    snprintf (s_client, sizeof s_client, "%s/client.key", s_dir);
    ck_assert_int_eq (zcert_save (server, s_server), 0);
    ck_assert_int_eq (zcert_save (client, s_client), 0);
    snprintf (s_server_z85, sizeof s_server_z85, "%s", zcert_public_txt (server));
    zcert_destroy (&server);
    zcert_destroy (&client);
}

static void
s_teardown (void)
{
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", s_dir);
    ck_assert_int_eq (system (command), 0);
    strcpy (s_dir, "/tmp/check_client_security.XXXXXX");
}

static int
s_init (busd_security_t *sec, const char *server, const char *cert, const char *user,
        const char *password)
{
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.curve_server_key = server;
    opts.curve_cert = cert;
    opts.plain_user = user;
    opts.plain_password = password;
    return busd_security_init (sec, &opts);
}

START_TEST (test_sets)
{
    busd_security_t sec;
    ck_assert_int_eq (s_init (&sec, NULL, NULL, NULL, NULL), 0);
    ck_assert_int_eq (sec.mechanism, 0);
    //  Empty strings are "not given" (an exported but empty variable).
    ck_assert_int_eq (s_init (&sec, "", "", "", ""), 0);
    ck_assert_int_eq (sec.mechanism, 0);
    ck_assert_int_eq (s_init (&sec, NULL, NULL, "u", "p"), 0);
    ck_assert_int_eq (sec.mechanism, 1);
    ck_assert_int_eq (s_init (&sec, NULL, NULL, "u", NULL), -EINVAL);
    ck_assert_int_eq (s_init (&sec, s_server, NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq (s_init (&sec, NULL, s_client, NULL, NULL), -EINVAL);
    ck_assert_int_eq (s_init (&sec, s_server, s_client, "u", "p"), -EINVAL);
}
END_TEST

START_TEST (test_curve)
{
    busd_security_t sec;
    char secret [320];
    snprintf (secret, sizeof secret, "%s_secret", s_client);
    //  The secret file, and the public file with the secret beside it.
    ck_assert_int_eq (s_init (&sec, s_server, secret, NULL, NULL), 0);
    ck_assert_int_eq (sec.mechanism, 2);
    ck_assert_str_eq (sec.server_public, s_server_z85);
    ck_assert_int_eq (strlen (sec.secret_key), 40);
    ck_assert_int_eq (s_init (&sec, s_server, s_client, NULL, NULL), 0);
    //  The server key inline.
    ck_assert_int_eq (s_init (&sec, s_server_z85, secret, NULL, NULL), 0);
    //  Missing files, a bad inline key.
    ck_assert_int_eq (s_init (&sec, "/nonexistent/server.key", secret, NULL, NULL), -ENOENT);
    ck_assert_int_eq (s_init (&sec, s_server, "/nonexistent/client.key", NULL, NULL), -ENOENT);
    ck_assert_int_ne (s_init (&sec, "not-a-key", secret, NULL, NULL), 0);
    //  A public file without a secret beside it is not a client certificate.
    char lonely [320];
    snprintf (lonely, sizeof lonely, "%s/lonely.key", s_dir);
    char command [700];
    snprintf (command, sizeof command, "cp %s %s", s_server, lonely);
    ck_assert_int_eq (system (command), 0);
    ck_assert_int_ne (s_init (&sec, s_server, lonely, NULL, NULL), 0);

    ck_assert_int_eq (s_init (&sec, s_server, secret, NULL, NULL), 0);
    busd_security_clear (&sec);
    ck_assert_int_eq (sec.mechanism, 0);
    ck_assert_int_eq (sec.secret_key [0], 0);
}
END_TEST

int
main (void)
{
    zsys_handler_set (NULL);
    Suite *suite = suite_create ("client_security");
    TCase *tc = tcase_create ("client_security");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_sets);
    tcase_add_test (tc, test_curve);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? 1 : 0;
}
