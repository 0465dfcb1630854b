package org.kernels4j.bench;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Properties;

/** Versions of the peer and charting libraries this build pins (the root pom's, filtered into a resource). */
final class Versions {

    private static final Properties PINNED = load();

    private Versions() {
    }

    /** The pinned version of {@code pytorch}, {@code djl}, {@code onnxruntime}, {@code jmh} or {@code uplot}. */
    static String of(String name) {
        String v = PINNED.getProperty(name);
        if (v == null || v.startsWith("${")) {
            throw new IllegalStateException("versions.properties has no filtered version of " + name);
        }
        return v;
    }

    private static Properties load() {
        try (InputStream in = Versions.class.getResourceAsStream("versions.properties")) {
            Properties p = new Properties();
            if (in != null) {
                p.load(in);
            }
            return p;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
