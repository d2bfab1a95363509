/*
 * curve.h -- CurveZMQ keys as mq keeps them: reading key files, and the
 * broker's allow-list of client public keys.
 *
 * A key is 40 characters of Z85 text (32 bytes).  A key file holds one,
 * on a line of its own, as `mq-admin keygen --secret F --public F`
 * writes them; the two lines `mq-admin keygen` prints ("public: KEY",
 * "secret: KEY") are understood too, each file giving the key it is
 * asked for.  A secret key file must not be accessible by group or
 * others (like ssh's private keys): it is refused, saying why.
 *
 * The allow-list is a directory with one file per client, named after
 * it, holding the client's public key.  Files whose names begin with a
 * dot are skipped (editors' and rsync's temporary files); a file that
 * holds no key is an error, never skipped silently, and so is a
 * directory or file that group or others may write (anyone who could
 * write there could let themselves in).
 */
#ifndef MQ_CURVE_H
#define MQ_CURVE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MQ_CURVE_KEY_TEXT 40 /* Z85 characters of a key */
#define MQ_CURVE_KEY_BYTES 32

/* Whether this libzmq has CURVE (it was built with libsodium). */
int mq_curve_available(void);

/* Whether text is a key: 40 Z85 characters that decode (key non-NULL:
 * its 32 bytes). */
int mq_curve_parse(const char *text, uint8_t key[MQ_CURVE_KEY_BYTES]);

/* The key in file path into out (40 characters and a NUL): secret says
 * which key of a "public:"/"secret:" pair, and that the file must be
 * private.  what names the setting in messages, e.g. "--curve-secret".
 * 0, or -MQ_EINVAL / -MQ_EIO with a message naming the file and what to
 * do. */
int mq_curve_read_key(const char *path, int secret, const char *what, char out[MQ_CURVE_KEY_TEXT + 1],
		      mq_err_t *err);

/* A server key given as the key itself or as a file holding it. */
int mq_curve_server_key(const char *arg, const char *what, char out[MQ_CURVE_KEY_TEXT + 1], mq_err_t *err);

/* The public key of a secret one (both Z85). */
int mq_curve_public_of(const char *secret, char out[MQ_CURVE_KEY_TEXT + 1], mq_err_t *err);

/* ---- the allow-list ---- */

typedef struct mq_curve_allow mq_curve_allow_t;

/* Read the client keys of dir, and of admin_dir when not NULL (keys
 * with every right; see mq_curve_allow_find).  Either may be NULL.
 * 0, or < 0 with err naming the file at fault; nothing is kept then. */
int mq_curve_allow_load(const char *dir, const char *admin_dir, mq_curve_allow_t **out, mq_err_t *err);

/* Whether key is allowed: 1 with the client's name (the file's) and
 * whether it is an admin key, 0 when it is in neither list.  A key in
 * both lists is an admin key. */
int mq_curve_allow_find(const mq_curve_allow_t *a, const uint8_t key[MQ_CURVE_KEY_BYTES], const char **name,
			int *admin);

/* Keys in the list (admin keys included). */
size_t mq_curve_allow_count(const mq_curve_allow_t *a);

void mq_curve_allow_free(mq_curve_allow_t *a);

#endif
