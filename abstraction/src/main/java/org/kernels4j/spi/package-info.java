/**
 * The service-provider interface for backends: what a backend module implements so that the public ops
 * can dispatch to it. Framework code does not need these types. Ops validate every argument before they
 * call into a backend, so implementations receive consistent, checked problems.
 */
package org.kernels4j.spi;
