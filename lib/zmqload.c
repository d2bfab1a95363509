/*
 * zmqload.c -- libzmq, loaded when it is first called.
 *
 * Linked into a program in place of -lzmq (the Makefile does it for
 * mq-pub), it defines the libzmq functions lib/ calls, each of which
 * loads libzmq.so.5 on first use and calls through.  A run that never
 * needs libzmq -- a one-shot `mq-pub -m`, which speaks ZMTP itself
 * (zmtp.c) -- then never pays for loading it and the eighteen libraries
 * it pulls in (libstdc++, libsodium, Kerberos, ...), which is most of
 * the time such a run would take.
 *
 * It is not part of libmq.a: a program linked with -lzmq (mq-serve, the
 * tests) gets libzmq the usual way.  When the library cannot be loaded,
 * zmq_ctx_new fails and zmq_strerror says why; nothing else can be
 * reached without a context.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Each function: return type, name, parameters, arguments. */
#define MQ_ZMQ_FUNCS(X)                                                                           \
	X(int, zmq_errno, (void), ())                                                             \
	X(const char *, zmq_strerror, (int e), (e))                                               \
	X(void *, zmq_ctx_new, (void), ())                                                        \
	X(int, zmq_ctx_term, (void *c), (c))                                                      \
	X(void *, zmq_socket, (void *c, int type), (c, type))                                     \
	X(int, zmq_close, (void *s), (s))                                                         \
	X(int, zmq_connect, (void *s, const char *addr), (s, addr))                               \
	X(int, zmq_setsockopt, (void *s, int o, const void *v, size_t n), (s, o, v, n))           \
	X(int, zmq_getsockopt, (void *s, int o, void *v, size_t *n), (s, o, v, n))                \
	X(int, zmq_send, (void *s, const void *b, size_t n, int f), (s, b, n, f))                 \
	X(int, zmq_socket_monitor, (void *s, const char *addr, int ev), (s, addr, ev))            \
	X(int, zmq_poll, (zmq_pollitem_t * it, int n, long ms), (it, n, ms))                      \
	X(int, zmq_msg_init, (zmq_msg_t * m), (m))                                                \
	X(int, zmq_msg_recv, (zmq_msg_t * m, void *s, int f), (m, s, f))                          \
	X(int, zmq_msg_close, (zmq_msg_t * m), (m))                                               \
	X(void *, zmq_msg_data, (zmq_msg_t * m), (m))                                             \
	X(size_t, zmq_msg_size, (const zmq_msg_t *m), (m))                                        \
	X(int, zmq_msg_more, (const zmq_msg_t *m), (m))                                           \
	X(int, zmq_has, (const char *what), (what))                                               \
	X(int, zmq_curve_public, (char *pub, const char *sec), (pub, sec))                        \
	X(int, zmq_curve_keypair, (char *pub, char *sec), (pub, sec))

#define SONAME "libzmq.so.5"

/* The module's state: the loaded library and its functions. */
static struct {
	void *lib;
	char why[300];
#define FIELD(ret, name, params, args) ret(*name) params;
	MQ_ZMQ_FUNCS(FIELD)
#undef FIELD
} lz;
static pthread_once_t lz_once = PTHREAD_ONCE_INIT;

static void lz_load(void)
{
	void *lib = dlopen(SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *e = dlerror();
		snprintf(lz.why, sizeof lz.why, "cannot load %s: %s (install libzmq5)", SONAME, e ? e : "not found");
		return;
	}
#define RESOLVE(ret, name, params, args)                                                                     \
	if (!(*(void **)&lz.name = dlsym(lib, #name))) {                                                     \
		snprintf(lz.why, sizeof lz.why, "cannot load %s: it has no %s (libzmq 4.3 or later is needed)", \
			 SONAME, #name);                                                                     \
		dlclose(lib);                                                                                \
		return;                                                                                      \
	}
	MQ_ZMQ_FUNCS(RESOLVE)
#undef RESOLVE
	lz.lib = lib;
}

static int lz_ready(void)
{
	pthread_once(&lz_once, lz_load);
	return lz.lib != NULL;
}

/* Before a context exists, errors are the loader's. */
int zmq_errno(void)
{
	return lz_ready() ? lz.zmq_errno() : errno;
}

const char *zmq_strerror(int e)
{
	return lz_ready() ? lz.zmq_strerror(e) : lz.why;
}

void *zmq_ctx_new(void)
{
	if (!lz_ready()) {
		errno = ELIBACC;
		return NULL;
	}
	return lz.zmq_ctx_new();
}

/* The rest are reached only through a context, so libzmq is loaded:
 * a call without one is a bug in the caller, stopped here. */
static void lz_need(const char *name)
{
	if (!lz_ready()) {
		fprintf(stderr, "%s called without a ZeroMQ context: %s\n", name, lz.why);
		abort();
	}
}

#define CALL(ret, name, params, args) \
	ret name params               \
	{                             \
		lz_need(#name);       \
		return lz.name args;  \
	}
CALL(int, zmq_ctx_term, (void *c), (c))
CALL(void *, zmq_socket, (void *c, int type), (c, type))
CALL(int, zmq_close, (void *s), (s))
CALL(int, zmq_connect, (void *s, const char *addr), (s, addr))
CALL(int, zmq_setsockopt, (void *s, int o, const void *v, size_t n), (s, o, v, n))
CALL(int, zmq_getsockopt, (void *s, int o, void *v, size_t *n), (s, o, v, n))
CALL(int, zmq_send, (void *s, const void *b, size_t n, int f), (s, b, n, f))
CALL(int, zmq_socket_monitor, (void *s, const char *addr, int ev), (s, addr, ev))
CALL(int, zmq_poll, (zmq_pollitem_t * it, int n, long ms), (it, n, ms))
CALL(int, zmq_msg_init, (zmq_msg_t * m), (m))
CALL(int, zmq_msg_recv, (zmq_msg_t * m, void *s, int f), (m, s, f))
CALL(int, zmq_msg_close, (zmq_msg_t * m), (m))
CALL(void *, zmq_msg_data, (zmq_msg_t * m), (m))
CALL(size_t, zmq_msg_size, (const zmq_msg_t *m), (m))
CALL(int, zmq_msg_more, (const zmq_msg_t *m), (m))
#undef CALL

/* The CurveZMQ helpers come before any context (curve.h): without the
 * library there is no CURVE, and zmq_strerror says why. */
int zmq_has(const char *what)
{
	return lz_ready() ? lz.zmq_has(what) : 0;
}

int zmq_curve_public(char *pub, const char *sec)
{
	if (!lz_ready()) {
		errno = ELIBACC;
		return -1;
	}
	return lz.zmq_curve_public(pub, sec);
}

int zmq_curve_keypair(char *pub, char *sec)
{
	if (!lz_ready()) {
		errno = ELIBACC;
		return -1;
	}
	return lz.zmq_curve_keypair(pub, sec);
}
