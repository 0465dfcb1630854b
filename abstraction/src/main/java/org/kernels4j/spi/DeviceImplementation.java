package org.kernels4j.spi;

import org.kernels4j.Device;

/** A backend's device, giving the ops their kernels. Every {@link Device} a backend returns implements this. */
public interface DeviceImplementation extends Device {

    /** Layer norm and RMS norm kernels. */
    LayerNormKernels layerNormKernels();

    /** Attention kernels. */
    AttentionKernels attentionKernels();

    /** Convolution kernels. */
    Conv2dKernels conv2dKernels();
}
