// A real Neo4j 5.26 server for tests and local use, without Docker.
//
// Runs Neo4j's own test harness (org.neo4j.test:neo4j-harness, fetched by Maven into lib/) in-process,
// with Bolt on a loopback port (0 = pick a free one), auth disabled (--auth: enabled, user neo4j with the
// initial password neo4j that must be changed, as a fresh server has), HTTP off. The databases are kept in
// DATA_DIR/data across restarts. Prints the Bolt URI once the
// server accepts connections, then waits until it is killed (SIGTERM/SIGINT shut it down cleanly) or until
// its standard input closes when started with --stdin (so a parent that dies takes the server with it).
//
//   java -Xmx1g -cp 'lib/*' Launcher.java DATA_DIR [PORT] [--stdin] [--auth]
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilders;

public class Launcher {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: Launcher DATA_DIR [PORT] [--stdin] [--auth]");
            System.exit(2);
        }
        Path dir = Path.of(args[0]);
        int port = args.length > 1 && !args[1].startsWith("--") ? Integer.parseInt(args[1]) : 0;
        boolean watchStdin = Arrays.asList(args).contains("--stdin");
        boolean auth = Arrays.asList(args).contains("--auth");

        // The harness runs in a fresh random subfolder of its working folder and deletes it on close; the
        // databases live in DATA_DIR/data instead, so they survive a stop and a start (neo4j-local keeps them).
        Neo4j neo4j = Neo4jBuilders.newInProcessBuilder(dir.resolve("harness"))
                .withConfig(GraphDatabaseSettings.data_directory, dir.resolve("data").toAbsolutePath())
                .withDisabledServer()
                .withConfig(BoltConnector.enabled, true)
                .withConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .withConfig(HttpConnector.enabled, false)
                .withConfig(GraphDatabaseSettings.auth_enabled, auth)
                // no LOAD CSV from file:/// URLs, and an empty import folder inside the data directory
                // (dbms.security.allow_csv_import_from_file_urls, server.directories.import)
                .withConfig(GraphDatabaseSettings.allow_file_urls, false)
                .withConfig(GraphDatabaseSettings.load_csv_file_url_root, dir.resolve("import").toAbsolutePath())
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            neo4j.close();
            stopped.countDown();
        }));

        var uri = neo4j.boltURI();
        waitForBolt(uri.getHost(), uri.getPort());
        System.out.println("NEO4J_URI=bolt://" + uri.getHost() + ":" + uri.getPort());
        System.out.println("NEO4J_VERSION=" + org.neo4j.kernel.internal.Version.getNeo4jVersion());
        System.out.flush();

        if (watchStdin) {
            while (System.in.read() != -1) { /* parent still alive */ }
            System.exit(0); // runs the shutdown hook
        }
        stopped.await();
    }

    private static void waitForBolt(String host, int port) throws InterruptedException {
        for (int i = 0; i < 600; i++) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(host, port), 500);
                return;
            } catch (Exception e) {
                Thread.sleep(100);
            }
        }
        throw new IllegalStateException("Neo4j did not accept Bolt connections on " + host + ":" + port);
    }
}
