package org.kernels4j.autotune;

import java.io.IOException;
import java.io.InputStream;
import java.util.Locale;
import java.util.Properties;

import org.kernels4j.Device;
import org.kernels4j.tuning.Tuning;

/**
 * What identifies a device in the tuning cache: the backend, the device name normalised for file names, the
 * driver version and the kernels4j version. Results measured under another driver or library version are
 * stale.
 *
 * @param backend      backend name
 * @param device       normalised device name ({@link #normalize})
 * @param deviceName   the name as the driver reports it
 * @param driver       driver or runtime version
 * @param library      kernels4j version
 * @param architecture architecture name, for the shipped defaults' fallback chain
 * @param vendor       normalised vendor name, likewise
 */
record DeviceKey(String backend, String device, String deviceName, String driver, String library,
                 String architecture, String vendor) {

    /** The kernels4j version of the abstraction jar on the class path, or {@code "dev"} outside a jar. */
    static final String LIBRARY_VERSION = libraryVersion();

    static DeviceKey of(Device d) {
        return new DeviceKey(d.backend().name(), normalize(d.name()), d.name(),
                String.valueOf(d.capabilities().driverVersion()), LIBRARY_VERSION,
                normalize(String.valueOf(d.capabilities().architecture())), normalize(d.vendor()));
    }

    /** The cache file's name: {@code <backend>-<device>.json}. */
    String fileName() {
        return backend + "-" + device + ".json";
    }

    /**
     * Lower case, trademark signs dropped, every run of other characters replaced by one {@code '-'}:
     * {@code "Intel(R) Xeon(R) CPU @ 2.20GHz"} becomes {@code "intel-xeon-cpu-2-20ghz"}.
     */
    static String normalize(String name) {
        if (name == null || name.isBlank()) {
            return "unknown";
        }
        String s = name.toLowerCase(Locale.ROOT).replaceAll("\\((r|tm|c)\\)", " ");
        s = s.replaceAll("[^a-z0-9]+", "-").replaceAll("^-+|-+$", "");
        return s.isEmpty() ? "unknown" : s;
    }

    private static String libraryVersion() {
        String v = Tuning.class.getPackage().getImplementationVersion();
        if (v != null) {
            return v;
        }
        try (InputStream in = Tuning.class.getResourceAsStream(
                "/META-INF/maven/org.kernels4j/kernels4j-abstraction/pom.properties")) {
            if (in != null) {
                Properties p = new Properties();
                p.load(in);
                return p.getProperty("version", "dev");
            }
        } catch (IOException e) {
            return "dev";
        }
        return "dev";
    }
}
