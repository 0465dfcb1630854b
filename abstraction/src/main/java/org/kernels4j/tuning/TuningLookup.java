package org.kernels4j.tuning;

import java.util.Optional;

import org.kernels4j.DType;
import org.kernels4j.Device;

/**
 * Where {@link Tuning} finds tuned parameters: registered with {@link java.util.ServiceLoader} under
 * {@code META-INF/services/org.kernels4j.tuning.TuningLookup}. The {@code kernels4j-autotune} module provides
 * one that reads the per-device tuning cache and the shipped per-device defaults; without any, every kernel
 * runs its default parameters.
 *
 * <p>Implementations must be thread-safe and must not throw for missing, corrupt or stale data: they report
 * it and return empty. {@link Tuning} checks whatever they return against the space's constraints and
 * remembers the answer per device, kernel, dtype and bucket until {@link Tuning#refresh()}.
 */
public interface TuningLookup {

    /**
     * Tuned parameters for {@code space}'s kernel on {@code device}, for {@code dtype} and {@code bucket}.
     *
     * @return the parameters with where they came from, or empty when nothing is known
     */
    Optional<Found> find(Device device, TuningSpace<?> space, DType dtype, String bucket);

    /** Forgets anything read so far, so that the next {@link #find} sees new data (e.g. a finished tuning run). */
    default void refresh() {
    }

    /**
     * A lookup's answer.
     *
     * @param parameters the parameters
     * @param source     {@link Tuning.Source#TUNED} (measured on this device) or {@link Tuning.Source#SHIPPED}
     *                   (a default shipped for this device, its architecture or its vendor)
     * @param origin     where it came from, for messages (a cache file, a shipped entry)
     */
    record Found(Parameters parameters, Tuning.Source source, String origin) {
        /** Validates the fields. */
        public Found {
            if (parameters == null || source == null || origin == null) {
                throw new IllegalArgumentException("Found: parameters, source and origin must not be null");
            }
        }
    }
}
