"""GraphQL integrations: ``fieldguard.plugins.strawberry`` and
``fieldguard.plugins.graphql_core``, sharing ``fieldguard.plugins.gql``."""
