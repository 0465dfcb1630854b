package org.kernels4j.autotune;

import java.io.PrintWriter;
import java.util.TreeSet;

import org.kernels4j.BackendStatus;
import org.kernels4j.Backends;
import org.kernels4j.Device;
import org.kernels4j.DeviceCapabilities;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code kernels4j devices}: every backend with its devices and capabilities, or why it is unavailable. */
@Command(name = "devices", mixinStandardHelpOptions = true,
        description = "List every backend with its devices and capabilities, or the reason it is unavailable.")
final class DevicesCommand implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        PrintWriter out = spec.commandLine().getOut();
        if (Backends.statuses().isEmpty()) {
            out.println("no backend on the class path");
        }
        for (BackendStatus s : Backends.statuses()) {
            if (!s.isAvailable()) {
                out.println(s.name() + ": unavailable: " + s.unavailableReason());
                continue;
            }
            out.println(s.name() + ": available, " + s.backend().devices().size() + " device(s)");
            for (Device d : s.backend().devices()) {
                DeviceCapabilities c = d.capabilities();
                out.println("  " + d.id() + "  " + d.name() + "  (" + d.vendor() + ")");
                out.println("    dtypes " + new TreeSet<>(c.dtypes().stream().map(Object::toString).toList())
                        + ", float64 " + yes(c.float64()) + ", atomics " + yes(c.atomics())
                        + ", subgroup " + (c.subgroupSize() == 0 ? "none" : c.subgroupSize())
                        + ", portable kernels " + yes(c.dialectKernels()));
                out.println("    compute units " + c.computeUnits() + ", max workgroup " + c.maxWorkgroupSize()
                        + ", local memory " + bytes(c.localMemoryBytes()) + ", memory " + bytes(c.globalMemoryBytes()));
                out.println("    architecture " + c.architecture() + ", driver " + c.driverVersion());
            }
        }
        out.flush();
    }

    private static String yes(boolean b) {
        return b ? "yes" : "no";
    }

    static String bytes(long b) {
        if (b >= 1L << 30) {
            return String.format(java.util.Locale.ROOT, "%.1f GiB", b / (double) (1L << 30));
        }
        if (b >= 1L << 20) {
            return String.format(java.util.Locale.ROOT, "%.1f MiB", b / (double) (1L << 20));
        }
        if (b >= 1L << 10) {
            return String.format(java.util.Locale.ROOT, "%.1f KiB", b / 1024.0);
        }
        return b + " B";
    }
}
