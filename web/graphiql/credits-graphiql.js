// Starts GraphiQL on Credits' endpoints: queries and mutations over POST /graphql, subscriptions
// over the WebSocket at /graphql/ws (graphql-transport-ws, through the graphql-ws client that
// graphiql.min.js bundles).
//
// The token: put {"Authorization": "Bearer ..."} in the Headers tab. HTTP requests send it as a
// header; for a subscription GraphiQL's fetcher merges the headers into the WebSocket's
// connection_init payload, which is where the server reads it (src/ws.rs), since a browser
// cannot set headers on a WebSocket. Headers are not saved in the browser's storage
// (shouldPersistHeaders stays off), so a token does not outlive the tab.
(function () {
  'use strict';
  var endpoint = new URL('/graphql', window.location.href);
  var subscriptions = new URL('/graphql/ws', window.location.href);
  subscriptions.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';

  var fetcher = GraphiQL.createFetcher({
    url: endpoint.href,
    subscriptionUrl: subscriptions.href,
    // The server answers with one JSON response; no multipart (incremental delivery).
    enableIncrementalDelivery: false,
  });

  var defaultQuery = [
    '# Credits GraphiQL, served by this server with no network access needed.',
    '#',
    '# Put your token in the Headers tab below:',
    '#   {"Authorization": "Bearer <token>"}',
    '# It is sent with every request, and in connection_init for subscriptions.',
    '',
    'query MyBalance {',
    '  me {',
    '    balance {',
    '      total',
    '      available',
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultHeaders: '{\n  "Authorization": "Bearer "\n}',
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: false,
    }),
  );
})();
