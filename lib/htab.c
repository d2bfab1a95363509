/*
 * htab.c -- allocation and deletion for the open-addressing index of
 * htab.h.  Deletion is the backward shift of linear probing (Knuth,
 * TAOCP 6.4, Algorithm R): after emptying slot i, each later entry of
 * the run moves into the hole unless its home lies cyclically in
 * (i, j], which would put it before its home.
 */
#include "htab.h"


int mq_htab_init(mq_htab_t *t, uint64_t entries, mq_err_t *err)
{
	t->slot = NULL;
	t->n = 0;
	if (entries > MQ_HTAB_MAX_ENTRIES)
		return mq_err_set(err, MQ_EINVAL, "hash table: %llu entries is more than the %llu supported",
				  (unsigned long long)entries, (unsigned long long)MQ_HTAB_MAX_ENTRIES);
	uint64_t n = entries < 8 ? 16 : entries * 2;
	if (n > SIZE_MAX / sizeof *t->slot || !(t->slot = mq_big_alloc((size_t)n * sizeof *t->slot)))
		return mq_err_set(err, MQ_ENOMEM, "hash table: out of memory for %llu slots",
				  (unsigned long long)n);
	t->n = n;
	return 0;
}

void mq_htab_free(mq_htab_t *t)
{
	if (!t)
		return;
	mq_big_free(t->slot, (size_t)t->n * sizeof *t->slot);
	t->slot = NULL;
	t->n = 0;
}

size_t mq_htab_slot_of(const mq_htab_t *t, uint32_t fp, uint32_t idx)
{
	uint64_t want = ((uint64_t)fp << 32) | ((uint64_t)idx + 1);
	size_t p = mq_htab_home(t, fp);
	while (t->slot[p] != want)
		p = mq_htab_succ(t, p);
	return p;
}

void mq_htab_remove_at(mq_htab_t *t, size_t i)
{
	size_t j = i;
	for (;;) {
		j = mq_htab_succ(t, j);
		uint64_t s = t->slot[j];
		if (!s)
			break;
		size_t k = mq_htab_home(t, mq_htab_slot_fp(s));
		/* Stays when its home is cyclically within (i, j]. */
		int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (!stays) {
			t->slot[i] = s;
			i = j;
		}
	}
	t->slot[i] = 0;
}
