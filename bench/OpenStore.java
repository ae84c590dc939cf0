// Opens an existing Neo4j 5 store folder (e.g. one written by `neo4j-admin database import`) with Bolt on a
// loopback port, auth disabled; prints NEO4J_URI=bolt://127.0.0.1:PORT once it accepts connections and runs until
// its standard input closes. Used by bench/queries.py only (the test suite uses scripts/neo4j/Launcher.java).
//
//   java -Xmx2g -cp 'lib/*' OpenStore.java HOME PORT PAGECACHE_MB
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Path;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;

public class OpenStore {
    public static void main(String[] args) throws Exception {
        Path home = Path.of(args[0]);
        int port = Integer.parseInt(args[1]);
        long pageCacheMb = Long.parseLong(args[2]);
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, false)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pageCacheMb * 1024 * 1024)
                .build();
        Runtime.getRuntime().addShutdownHook(new Thread(dbms::shutdown));
        for (int i = 0; i < 600; i++) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 500);
                break;
            } catch (IOException e) {
                Thread.sleep(100);
            }
        }
        System.out.println("NEO4J_URI=bolt://127.0.0.1:" + port);
        System.out.flush();
        while (System.in.read() != -1) { /* parent still alive */ }
        System.exit(0);
    }
}
