/*
 * A stand-in libcuda.so.1 for testing the GPU probe on a machine without a GPU (selftest.sh).
 * It implements the driver calls the probe makes with host memory and runs the probe's kernels
 * (probe.cu) on the CPU, so that the probe's Java side -- argument marshalling through JCuda,
 * poisoning, bit-exact checks, guard checks, event timing, JSON -- runs end to end before the one
 * real device call. selftest.sh adds a failing stub for every other function JCuda imports.
 * Nothing here measures anything: its "device" is this CPU and its timings mean nothing.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
enum { OK = 0, ERR_INVALID_VALUE = 1, ERR_NOT_FOUND = 500 };

/* FAKE_CUDA_BREAK=axpy|copy makes the fake compute one element wrong, =init makes it find no device:
 * the probe must notice each */
static int broken(const char *what)
{
    const char *b = getenv("FAKE_CUDA_BREAK");
    return b && strcmp(b, what) == 0;
}

CUresult cuInit(unsigned flags) { (void)flags; return broken("init") ? 100 /* CUDA_ERROR_NO_DEVICE */ : OK; }
CUresult cuDriverGetVersion(int *v) { *v = 13000; return OK; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return OK; }
CUresult cuDeviceGet(int *d, int ordinal) { *d = ordinal; return ordinal == 0 ? OK : ERR_INVALID_VALUE; }
CUresult cuDeviceGetName(char *name, int len, int dev) { (void)dev; strncpy(name, "Fake CUDA device (CPU)", len); return OK; }
CUresult cuDeviceTotalMem_v2(size_t *bytes, int dev) { (void)dev; *bytes = (size_t)8 << 30; return OK; }
CUresult cuDeviceGetPCIBusId(char *id, int len, int dev) { (void)dev; strncpy(id, "0000:00:00.0", len); return OK; }
CUresult cuMemGetInfo_v2(size_t *free_, size_t *total) { *free_ = (size_t)6 << 30; *total = (size_t)8 << 30; return OK; }

CUresult cuDeviceGetAttribute(int *v, int attribute, int dev)
{
    (void)dev;
    switch (attribute) {
    case 75: *v = 9; break;               /* COMPUTE_CAPABILITY_MAJOR */
    case 76: *v = 0; break;               /* COMPUTE_CAPABILITY_MINOR */
    case 16: *v = 2; break;               /* MULTIPROCESSOR_COUNT */
    case 38: *v = 1 << 20; break;         /* L2_CACHE_SIZE */
    case 8: *v = 48 << 10; break;         /* MAX_SHARED_MEMORY_PER_BLOCK */
    case 97: *v = 227 << 10; break;       /* MAX_SHARED_MEMORY_PER_BLOCK_OPTIN */
    case 15: return ERR_INVALID_VALUE;    /* GPU_OVERLAP: an attribute this "driver" refuses */
    default: *v = attribute; break;
    }
    return OK;
}

static int context_token, stream_token, module_token;
CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) { (void)dev; *ctx = &context_token; return OK; }
CUresult cuDevicePrimaryCtxRelease_v2(int dev) { (void)dev; return OK; }
CUresult cuCtxSetCurrent(void *ctx) { return ctx == &context_token ? OK : ERR_INVALID_VALUE; }
CUresult cuCtxSynchronize(void) { return OK; }
CUresult cuStreamCreate(void **s, unsigned flags) { (void)flags; *s = &stream_token; return OK; }
CUresult cuStreamSynchronize(void *s) { (void)s; return OK; }
CUresult cuStreamDestroy_v2(void *s) { (void)s; return OK; }

CUresult cuModuleLoadData(void **m, const void *image) { (void)image; *m = &module_token; return OK; }
CUresult cuModuleUnload(void *m) { return m == &module_token ? OK : ERR_INVALID_VALUE; }

static const char *const kernels[] = {"axpy_fma", "fill_hash", "copy_vec4_u1", "copy_vec4_u4"};
CUresult cuModuleGetFunction(void **f, void *m, const char *name)
{
    (void)m;
    for (size_t i = 0; i < sizeof kernels / sizeof *kernels; i++) {
        if (strcmp(name, kernels[i]) == 0) { *f = (void *)kernels[i]; return OK; }
    }
    return ERR_NOT_FOUND;
}
CUresult cuFuncGetAttribute(int *v, int attribute, void *f) { (void)f; *v = attribute == 4 ? 16 : 90; return OK; }

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) { void *m = malloc(n); *p = (CUdeviceptr)(uintptr_t)m; return m ? OK : 2; }
CUresult cuMemFree_v2(CUdeviceptr p) { free((void *)(uintptr_t)p); return OK; }
CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n) { memcpy((void *)(uintptr_t)d, s, n); return OK; }
CUresult cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n) { memcpy(d, (void *)(uintptr_t)s, n); return OK; }
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, void *st)
{
    (void)st;
    memcpy((void *)(uintptr_t)d, (void *)(uintptr_t)s, n);
    return OK;
}
CUresult cuMemsetD32Async(CUdeviceptr d, unsigned v, size_t n, void *st)
{
    (void)st;
    unsigned *p = (unsigned *)(uintptr_t)d;
    for (size_t i = 0; i < n; i++) p[i] = v;
    return OK;
}

/* the kernels of probe.cu, run on the CPU with the arguments as the driver would receive them */
CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, void *stream, void **params, void **extra)
{
    (void)gy; (void)gz; (void)by; (void)bz; (void)shared; (void)stream; (void)extra;
    const char *name = f;
    if (strcmp(name, "axpy_fma") == 0) {
        const float *x = *(float **)params[0], *y = *(float **)params[1];
        float *out = *(float **)params[2], a = *(float *)params[3];
        int n = *(int *)params[4];
        if ((unsigned long long)gx * bx < (unsigned long long)n) return ERR_INVALID_VALUE;
        for (int i = 0; i < n; i++) out[i] = fmaf(a, x[i], y[i]);
        if (broken("axpy")) out[n / 2] += 1.0f;
        return OK;
    }
    if (strcmp(name, "fill_hash") == 0) {
        float *dst = *(float **)params[0];
        unsigned long long n = *(unsigned long long *)params[1];
        unsigned seed = *(unsigned *)params[2];
        for (unsigned long long i = 0; i < n; i++) {
            unsigned h = (unsigned)i ^ ((unsigned)(i >> 32) * 0x9E3779B9u) ^ seed;
            h ^= h >> 16; h *= 0x7FEB352Du; h ^= h >> 15; h *= 0x846CA68Bu; h ^= h >> 16;
            dst[i] = (float)(h >> 8) * (1.0f / 8388608.0f) - 1.0f;
        }
        return OK;
    }
    if (strncmp(name, "copy_vec4_", 10) == 0) {
        const float *src = *(float **)params[0];
        float *dst = *(float **)params[1];
        unsigned long long n = *(unsigned long long *)params[2];
        memcpy(dst, src, n * sizeof(float));
        if (broken("copy")) dst[n - 1] = 0.0f;
        return OK;
    }
    return ERR_INVALID_VALUE;
}

struct event { struct timespec t; };
CUresult cuEventCreate(void **e, unsigned flags) { (void)flags; *e = calloc(1, sizeof(struct event)); return *e ? OK : 2; }
CUresult cuEventRecord(void *e, void *s) { (void)s; clock_gettime(CLOCK_MONOTONIC, &((struct event *)e)->t); return OK; }
CUresult cuEventSynchronize(void *e) { (void)e; return OK; }
CUresult cuEventDestroy_v2(void *e) { free(e); return OK; }
CUresult cuEventElapsedTime(float *ms, void *a, void *b)
{
    struct timespec s = ((struct event *)a)->t, e = ((struct event *)b)->t;
    *ms = (float)((e.tv_sec - s.tv_sec) * 1e3 + (e.tv_nsec - s.tv_nsec) / 1e6);
    return OK;
}
