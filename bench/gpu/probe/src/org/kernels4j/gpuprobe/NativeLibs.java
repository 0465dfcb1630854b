package org.kernels4j.gpuprobe;

import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * Opens a system library the way the dynamic linker would (dlopen by soname) and asks which
 * symbols it exports, without calling anything. The JNI libraries of JCuda and JCublas bind
 * lazily: calling a function that the installed driver does not export would end the JVM with
 * "symbol lookup error", so the probe checks each symbol here before it calls through JCuda.
 */
final class NativeLibs {

    private final String soname;
    private final SymbolLookup lookup;

    private NativeLibs(String soname, SymbolLookup lookup) {
        this.soname = soname;
        this.lookup = lookup;
    }

    /** The library, or {@link Report.Unavailable} saying it is not on the loader's path. */
    static NativeLibs open(String soname) throws Report.Unavailable {
        try {
            return new NativeLibs(soname, SymbolLookup.libraryLookup(soname, Arena.global()));
        } catch (IllegalArgumentException e) {
            String path = System.getenv().getOrDefault("LD_LIBRARY_PATH", "");
            throw new Report.Unavailable(soname + " not found (" + e.getMessage()
                    + "; LD_LIBRARY_PATH=" + (path.isEmpty() ? "unset" : path) + ")");
        }
    }

    boolean has(String symbol) {
        return lookup.find(symbol).isPresent();
    }

    List<String> missing(Collection<String> symbols) {
        List<String> m = new ArrayList<>();
        for (String s : symbols) {
            if (!has(s)) m.add(s);
        }
        return m;
    }

    /** Throws {@link Report.Unavailable} naming the missing symbols, if any. */
    void require(Collection<String> symbols, String forWhat) throws Report.Unavailable {
        List<String> m = missing(symbols);
        if (!m.isEmpty()) {
            throw new Report.Unavailable(soname + " lacks " + m + ", needed for " + forWhat);
        }
    }
}
