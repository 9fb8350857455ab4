// The lab's JVM service: a counter bumped by a thread every 100 ms, served over HTTP and
// written to stdout as heartbeat lines (`hb <counter> <unix ns> jvm`, the shape ferryman
// measures the application-visible gap from). Compiled at image build time; only the
// .class files ship. Usage: java -cp /opt/ferryman Counter [PORT]
import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;

public final class Counter {
    static final AtomicLong COUNTER = new AtomicLong();
    static final long STARTED_NS = System.currentTimeMillis() * 1_000_000L;

    static long nowNs() {
        java.time.Instant t = java.time.Instant.now();
        return t.getEpochSecond() * 1_000_000_000L + t.getNano();
    }

    public static void main(String[] args) throws Exception {
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 8080;
        HttpServer http = HttpServer.create(new InetSocketAddress(port), 16);
        http.createContext("/", ex -> {
            byte[] body = String.format("{\"counter\": %d, \"started_ns\": %d, \"pid\": %d}\n",
                    COUNTER.get(), STARTED_NS, ProcessHandle.current().pid())
                    .getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().set("Content-Type", "application/json");
            ex.getResponseHeaders().set("Connection", "close");
            ex.sendResponseHeaders(200, body.length);
            try (OutputStream o = ex.getResponseBody()) {
                o.write(body);
            }
        });
        http.setExecutor(Executors.newFixedThreadPool(2));
        http.start();
        System.out.println("jvm counter: listening on " + port);
        System.out.flush();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> http.stop(0)));
        while (true) {
            long c = COUNTER.incrementAndGet();
            System.out.println("hb " + c + " " + nowNs() + " jvm");
            System.out.flush();
            Thread.sleep(100);
        }
    }
}
