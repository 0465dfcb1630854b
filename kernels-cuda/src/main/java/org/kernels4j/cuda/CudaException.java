package org.kernels4j.cuda;

/**
 * A CUDA driver call failed. The message names the call and the driver's result, e.g.
 * {@code "cuMemAlloc(1073741824 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)"}.
 *
 * <p>A kernel that faults (an illegal address, say) is reported by the next call that waits for it, and the
 * driver then refuses further work in that process: such an error is not recoverable.
 */
public class CudaException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final String call;
    private final int result;
    private final String resultName;

    /**
     * @param call        the driver function (with what it was asked for)
     * @param result      the {@code CUresult} value
     * @param resultName  its name, e.g. {@code CUDA_ERROR_OUT_OF_MEMORY}
     * @param description the driver's description of the result, or null
     */
    public CudaException(String call, int result, String resultName, String description) {
        super(call + " failed: " + resultName + (description == null || description.isBlank() ? "" : " (" + description + ")"));
        this.call = call;
        this.result = result;
        this.resultName = resultName;
    }

    /** The driver function that failed, with what it was asked for. */
    public String call() {
        return call;
    }

    /** The {@code CUresult} value. */
    public int result() {
        return result;
    }

    /** The {@code CUresult} name, e.g. {@code CUDA_ERROR_OUT_OF_MEMORY}. */
    public String resultName() {
        return resultName;
    }
}
