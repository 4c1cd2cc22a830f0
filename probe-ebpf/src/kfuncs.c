// SPDX-License-Identifier: GPL-2.0
/*
 * The kfuncs of kernel-patches/, declared for the BPF object.
 *
 * rustc emits no debug info for foreign functions, so Rust externs alone
 * leave the object without a .ksyms datasec and aya cannot resolve them.
 * `cargo xtask build-ebpf` compiles this file to LLVM bitcode and links it
 * in front of the Rust code: clang describes each extern in BTF, and the
 * Rust declarations in kfuncs.rs call the same symbols.
 *
 * The struct must be complete (aya's signature check rejects a forward
 * declaration); it mirrors struct bpf_nolock_obj of patch 0001.
 */

#define __ksym __attribute__((section(".ksyms")))

struct bpf_nolock_obj {
	unsigned long long magic;
	unsigned long long alloc_ns;
	unsigned long long free_ns;
	struct {
		unsigned long norm;
		unsigned long exp;
	} gp_seq;
	unsigned int tag;
	unsigned int payload_size;
	unsigned short alloc_cpu;
	unsigned short free_cpu;
	unsigned short alloc_ctx;
	unsigned short free_ctx;
	void *rcu;
};

/*
 * Objects a trigger holds between its runs until a burst is complete
 * (--burst), one slot per CPU, trigger and place in the burst
 * (probe_common::held_slot()). A map value that holds a referenced kptr
 * must say so in BTF with the "kptr" type tag, which Rust cannot write,
 * so the map is declared here and triggers.rs reaches it as an extern.
 * HELD_SLOTS comes from probe_common::HELD_SLOTS (cargo xtask build-ebpf
 * passes it); patch 0003 gives the kernel the destructor such maps need.
 */
#ifndef HELD_SLOTS
#error "HELD_SLOTS must be defined: build with cargo xtask build-ebpf"
#endif

#define BPF_MAP_TYPE_ARRAY 2
#define __kptr __attribute__((btf_type_tag("kptr")))

struct held_obj {
	struct bpf_nolock_obj __kptr *obj;
};

struct {
	int (*type)[BPF_MAP_TYPE_ARRAY];
	int (*max_entries)[HELD_SLOTS];
	unsigned int *key;
	struct held_obj *value;
} HELD __attribute__((section(".maps"), used));

extern struct bpf_nolock_obj *bpf_kmalloc_nolock(unsigned int payload_size,
						 unsigned int flags,
						 unsigned int tag) __ksym;
extern void bpf_kfree_rcu_nolock(struct bpf_nolock_obj *obj) __ksym;
extern void bpf_kfree_nolock(struct bpf_nolock_obj *obj) __ksym;
extern _Bool bpf_nolock_gp_elapsed(unsigned long norm, unsigned long exp) __ksym;
extern void bpf_nolock_barrier(void) __ksym;
extern int bpf_nolock_bench_loop(unsigned int loop, unsigned int payload_size,
				 unsigned int flags, unsigned int pairs) __ksym;

/*
 * BPF's own allocator, the bench's baseline for what a BPF program has
 * without the series: bpf_obj_new() takes the BTF id of a type of the
 * program, which only clang can name (a CO-RE relocation), so the two
 * calls are wrapped here and inlined into the Rust bench at link time.
 * The type is as large as the bare struct bpf_nolock_obj
 * (probe_common::BENCH_OBJ_SIZE).
 */
extern void *bpf_obj_new_impl(unsigned long long local_type_id,
			      void *meta) __ksym;
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;

struct bench_obj {
	unsigned long long words[8];
};

_Static_assert(sizeof(struct bench_obj) == sizeof(struct bpf_nolock_obj),
	       "the baseline objects must be as large as the series' own");

__attribute__((always_inline)) void *nolock_probe_obj_new(void)
{
	/* 0 is BPF_TYPE_ID_LOCAL: the id in the program's own BTF. */
	return bpf_obj_new_impl(__builtin_btf_type_id(*(struct bench_obj *)0, 0), 0);
}

__attribute__((always_inline)) void nolock_probe_obj_drop(void *obj)
{
	bpf_obj_drop_impl(obj, 0);
}

/*
 * clang only emits BTF for externs that are referenced. This function is
 * never called by a program; bpf-linker drops it, the BTF stays.
 */
void nolock_probe_kfunc_refs(void)
{
	struct bpf_nolock_obj *obj = bpf_kmalloc_nolock(0, 0, 0);

	if (obj) {
		if (bpf_nolock_gp_elapsed(obj->gp_seq.norm, obj->gp_seq.exp))
			bpf_kfree_rcu_nolock(obj);
		else
			bpf_kfree_nolock(obj);
	}
	bpf_nolock_barrier();
	bpf_nolock_bench_loop(0, 0, 0, 0);
}
