# Make variables for the coverage flavor: kbuild's per-object switch
# (GCOV_PROFILE_<object>) for the files that hold the nolock machinery:
# kmalloc_nolock(), kfree_nolock() and the rcu sheaves (mm/slub.c),
# kfree_rcu_nolock()'s entry (mm/slab_common.c) and the series' kfuncs.
GCOV_PROFILE_slub.o=y
GCOV_PROFILE_slab_common.o=y
GCOV_PROFILE_slab_nolock_kfuncs.o=y
