package org.kernels4j.opencl;

import java.lang.invoke.MethodHandle;
import java.lang.reflect.Array;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

import org.kernels4j.spi.Debug;

/**
 * Keeps the JVM's POSIX signal handlers in place across calls into an OpenCL driver that replaces them.
 *
 * <p>Why: PoCL's CPU driver runs LLVM in the process, and LLVM (15 here) installs its own handlers for SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL, SIGINT, SIGTERM, SIGUSR2 and others the first time PoCL opens its devices
 * ({@code clGetDeviceIDs}), with {@code SA_RESETHAND}. HotSpot takes SIGSEGV in normal operation (implicit null
 * checks and safepoint polls of compiled code), so the next such fault goes to LLVM's handler instead, which the
 * kernel has just reset to the default action: if a second thread faults before LLVM puts the JVM's handler
 * back, the whole JVM dies with SIGSEGV (exit code 139, no {@code hs_err} file). Seen as JMH forks of the CPU
 * backend dying at their first warm-up (the fork had opened PoCL during backend discovery): 5 of 163 forks in a
 * loop, none of 184 with this guard; the core dump showed one thread in LLVM's handler and a second faulting at
 * the same null check.
 *
 * <p>What: {@link #save} reads the current action of every signal 1 to 31 with libc's {@code sigaction} and
 * {@link #restore} writes back, byte for byte, each one whose handler changed (the struct is opaque here but for
 * its first field, the handler's address, on Linux and the BSDs). LLVM registers its handlers once per process
 * and does not check them again, so after the restore it never reinstalls them.
 *
 * <p>How: through the Foreign Function and Memory API, which is final from JDK 22; kernels4j is compiled for
 * JDK 21, where that API is a preview, so it is reached by reflection and the guard does nothing on JDK 21 (there,
 * preloading the JDK's {@code lib/libjsig.so} keeps the JVM's handlers in place instead). On a platform
 * without {@code sigaction} it does nothing either.
 */
final class JvmSignalHandlers {

    /** Bytes reserved per saved {@code struct sigaction} (152 on Linux x86-64). */
    private static final int ACTION_BYTES = 256;

    /** Bytes of the handler's address at the start of the struct (sa_handler on Linux and the BSDs). */
    private static final int HANDLER_BYTES = 8;

    /** Signals 1 to 31; SIGKILL and SIGSTOP (9, 19 on Linux) cannot be changed and are skipped by sigaction. */
    private static final int SIGNALS = 31;

    private static final Libc LIBC = Libc.load();

    private final ByteBuffer saved;

    private JvmSignalHandlers(ByteBuffer saved) {
        this.saved = saved;
    }

    /** The current actions of signals 1 to 31 (nothing when this JVM cannot read them). */
    static JvmSignalHandlers save() {
        if (LIBC == null) {
            return new JvmSignalHandlers(null);
        }
        ByteBuffer all = ByteBuffer.allocate(SIGNALS * ACTION_BYTES);
        for (int sig = 1; sig <= SIGNALS; sig++) {
            all.put((sig - 1) * ACTION_BYTES, LIBC.action(sig), 0, ACTION_BYTES);
        }
        return new JvmSignalHandlers(all);
    }

    /** Puts back every action that changed since {@link #save}; returns those signals' numbers. */
    int[] restore() {
        if (saved == null) {
            return new int[0];
        }
        List<Integer> changed = new ArrayList<>();
        byte[] before = new byte[ACTION_BYTES];
        for (int sig = 1; sig <= SIGNALS; sig++) {
            saved.get((sig - 1) * ACTION_BYTES, before);
            // the handler is what a driver replaces; the rest of the struct need not compare equal even when
            // nothing changed (glibc leaves most of sa_mask's 128 bytes unwritten on a read)
            if (!Arrays.equals(before, 0, HANDLER_BYTES, LIBC.action(sig), 0, HANDLER_BYTES)) {
                LIBC.setAction(sig, before);
                changed.add(sig);
            }
        }
        int[] signals = changed.stream().mapToInt(Integer::intValue).toArray();
        if (signals.length > 0) {
            Debug.log(1, () -> "opencl: the driver replaced the JVM's handlers of signals " + Arrays.toString(signals)
                    + "; put them back");
        }
        return signals;
    }

    /** Whether {@link #save} and {@link #restore} work in this JVM (JDK 22+ with libc's sigaction). */
    static boolean supported() {
        return LIBC != null;
    }

    /**
     * The file of the shared object that holds the current handler of {@code sig} (libc's {@code dladdr}), or
     * null when unsupported or the handler is SIG_DFL or SIG_IGN; for tests and diagnostics.
     */
    static String handlerLibrary(int sig) {
        return LIBC == null ? null : LIBC.handlerLibrary(sig);
    }

    /**
     * libc's sigaction and dladdr through java.lang.foreign, looked up by reflection (see the class comment), with
     * one native buffer for a {@code struct sigaction} and one for dladdr's {@code Dl_info}.
     */
    private record Libc(MethodHandle sigaction, MethodHandle dladdr, MethodHandle ofAddress, MethodHandle cString,
                        Object nul, Object action, ByteBuffer actionBytes, Object info, ByteBuffer infoBytes) {

        static Libc load() {
            if (Runtime.version().feature() < 22) {
                return null;
            }
            try {
                Class<?> linkerType = Class.forName("java.lang.foreign.Linker");
                Class<?> layoutType = Class.forName("java.lang.foreign.MemoryLayout");
                Class<?> valueLayoutType = Class.forName("java.lang.foreign.ValueLayout");
                Class<?> descriptorType = Class.forName("java.lang.foreign.FunctionDescriptor");
                Class<?> segmentType = Class.forName("java.lang.foreign.MemorySegment");
                Class<?> optionType = Class.forName("java.lang.foreign.Linker$Option");
                Object linker = linkerType.getMethod("nativeLinker").invoke(null);
                Object lookup = linkerType.getMethod("defaultLookup").invoke(linker);
                var find = Class.forName("java.lang.foreign.SymbolLookup").getMethod("find", String.class);
                Optional<?> sigactionSymbol = (Optional<?>) find.invoke(lookup, "sigaction");
                Optional<?> dladdrSymbol = (Optional<?>) find.invoke(lookup, "dladdr");
                if (sigactionSymbol.isEmpty() || dladdrSymbol.isEmpty()) {
                    return null;
                }
                Object intLayout = valueLayoutType.getField("JAVA_INT").get(null);
                Object address = valueLayoutType.getField("ADDRESS").get(null);
                var describe = descriptorType.getMethod("of", layoutType, layoutType.arrayType());
                Object sigactionType = describe.invoke(null, intLayout, layouts(layoutType, intLayout, address, address));
                Object dladdrType = describe.invoke(null, intLayout, layouts(layoutType, address, address));
                var downcall = linkerType.getMethod("downcallHandle", segmentType, descriptorType,
                        optionType.arrayType());
                Object noOptions = Array.newInstance(optionType, 0);
                MethodHandle sigaction = (MethodHandle) downcall.invoke(linker, sigactionSymbol.get(), sigactionType,
                        noOptions);
                MethodHandle dladdr = (MethodHandle) downcall.invoke(linker, dladdrSymbol.get(), dladdrType, noOptions);
                Object arena = Class.forName("java.lang.foreign.Arena").getMethod("global").invoke(null);
                var allocate = Class.forName("java.lang.foreign.SegmentAllocator").getMethod("allocate", long.class);
                var asByteBuffer = segmentType.getMethod("asByteBuffer");
                Object action = allocate.invoke(arena, (long) ACTION_BYTES);
                Object info = allocate.invoke(arena, 64L);
                // a full-privilege lookup: reinterpret is caller-sensitive (restricted), which publicLookup refuses
                var lookupMethods = java.lang.invoke.MethodHandles.lookup();
                MethodHandle ofAddress = lookupMethods.unreflect(segmentType.getMethod("ofAddress", long.class));
                // a C string at an address: MemorySegment.ofAddress(a).reinterpret(4096).getString(0)
                MethodHandle reinterpret = lookupMethods.unreflect(segmentType.getMethod("reinterpret", long.class));
                MethodHandle getString = lookupMethods.unreflect(segmentType.getMethod("getString", long.class));
                MethodHandle cString = java.lang.invoke.MethodHandles.insertArguments(getString, 1, 0L);
                cString = java.lang.invoke.MethodHandles.filterArguments(cString, 0,
                        java.lang.invoke.MethodHandles.insertArguments(reinterpret, 1, 4096L));
                cString = java.lang.invoke.MethodHandles.filterArguments(cString, 0, ofAddress);
                Libc libc = new Libc(sigaction, dladdr, ofAddress, cString, segmentType.getField("NULL").get(null),
                        action, ((ByteBuffer) asByteBuffer.invoke(action)).order(java.nio.ByteOrder.nativeOrder()),
                        info, ((ByteBuffer) asByteBuffer.invoke(info)).order(java.nio.ByteOrder.nativeOrder()));
                libc.action(11);
                return libc;
            } catch (Throwable e) {
                Debug.log(1, () -> "opencl: cannot read the JVM's signal handlers (" + e + "); not guarding them");
                return null;
            }
        }

        private static Object layouts(Class<?> layoutType, Object... layouts) {
            Object array = Array.newInstance(layoutType, layouts.length);
            for (int i = 0; i < layouts.length; i++) {
                Array.set(array, i, layouts[i]);
            }
            return array;
        }

        /** The current {@code struct sigaction} of {@code sig}, as bytes. */
        synchronized byte[] action(int sig) {
            sigaction(sig, nul, action);
            byte[] a = new byte[ACTION_BYTES];
            actionBytes.get(0, a);
            return a;
        }

        /** Sets the action of {@code sig} to {@code bytes}, as {@link #action} returned them. */
        synchronized void setAction(int sig, byte[] bytes) {
            actionBytes.put(0, bytes);
            sigaction(sig, action, nul);
        }

        synchronized String handlerLibrary(int sig) {
            sigaction(sig, nul, action);
            // sa_handler (or sa_sigaction) is the struct's first field on Linux and the BSDs
            long handler = actionBytes.getLong(0);
            if (handler == 0 || handler == 1) {
                return null;
            }
            try {
                if ((int) dladdr.invokeWithArguments(ofAddress.invoke(handler), info) == 0) {
                    return "?";
                }
                return (String) cString.invoke(infoBytes.getLong(0));
            } catch (Throwable e) {
                throw new IllegalStateException("dladdr of signal " + sig + "'s handler: " + e, e);
            }
        }

        private void sigaction(int sig, Object act, Object old) {
            int rc;
            try {
                rc = (int) sigaction.invokeWithArguments(sig, act, old);
            } catch (Throwable e) {
                throw new IllegalStateException("sigaction(" + sig + "): " + e, e);
            }
            if (rc != 0) {
                // SIGKILL and SIGSTOP cannot be changed; nothing ever changes them either
                Debug.log(3, () -> "opencl: sigaction(" + sig + ") returned " + rc);
            }
        }
    }
}
