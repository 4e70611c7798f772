// Clang thread-safety annotations (LevelDB / Abseil style). Members say which mutex guards them
// (KUBEMOE_GUARDED_BY), functions which mutex they need held (KUBEMOE_REQUIRES) or take
// (KUBEMOE_ACQUIRE / KUBEMOE_RELEASE); clang's -Wthread-safety then proves at compile time that
// every access holds the right lock. Under GCC, which has no such analysis, the macros expand to
// nothing; ctest's thread_safety_analysis (tools/thread_safety_check.py) runs clang over every
// source that uses them. The names are prefixed: Abseil (through gRPC) defines the bare ones.
#pragma once

#if defined(__clang__)
#define KUBEMOE_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define KUBEMOE_THREAD_ANNOTATION(x)
#endif

#define KUBEMOE_CAPABILITY(x) KUBEMOE_THREAD_ANNOTATION(capability(x))
#define KUBEMOE_SCOPED_CAPABILITY KUBEMOE_THREAD_ANNOTATION(scoped_lockable)
#define KUBEMOE_GUARDED_BY(x) KUBEMOE_THREAD_ANNOTATION(guarded_by(x))
#define KUBEMOE_PT_GUARDED_BY(x) KUBEMOE_THREAD_ANNOTATION(pt_guarded_by(x))
#define KUBEMOE_ACQUIRED_BEFORE(...) KUBEMOE_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define KUBEMOE_ACQUIRED_AFTER(...) KUBEMOE_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define KUBEMOE_REQUIRES(...) KUBEMOE_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define KUBEMOE_ACQUIRE(...) KUBEMOE_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define KUBEMOE_RELEASE(...) KUBEMOE_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define KUBEMOE_TRY_ACQUIRE(...) KUBEMOE_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define KUBEMOE_EXCLUDES(...) KUBEMOE_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define KUBEMOE_ASSERT_CAPABILITY(x) KUBEMOE_THREAD_ANNOTATION(assert_capability(x))
#define KUBEMOE_RETURN_CAPABILITY(x) KUBEMOE_THREAD_ANNOTATION(lock_returned(x))
#define KUBEMOE_NO_THREAD_SAFETY_ANALYSIS KUBEMOE_THREAD_ANNOTATION(no_thread_safety_analysis)
