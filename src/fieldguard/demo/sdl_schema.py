"""The demo social network as a plain graphql-core schema built from SDL.

Code-side annotations show how an SDL schema carries them: ``@classify``
tags (compliance's classification data overrides them), and IBM-style
``@cost`` / ``@listSize`` for the static cost.

Example:
    >>> from fieldguard.demo.data import Store
    >>> schema = build_sdl_schema()
    >>> sorted(schema.get_type("SearchResult").types, key=lambda t: t.name)[0].name
    'Post'
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from operator import attrgetter
from typing import Any

from graphql import GraphQLObjectType, GraphQLSchema, build_schema

from fieldguard.demo import data
from fieldguard.guard import snake_case
from fieldguard.plugins.gql.analysis import PURPOSE_SDL

SDL = PURPOSE_SDL + '''
directive @classify(tags: [String!]!) on FIELD_DEFINITION
directive @cost(weight: String!) on FIELD_DEFINITION
directive @listSize(assumedSize: Int, slicingArguments: [String!]) on FIELD_DEFINITION

interface Node { id: ID! }

type User implements Node {
  id: ID!
  handle: String!
  displayName: String!
  email: String @classify(tags: ["pii", "contact"])
  phone: String @classify(tags: ["pii", "contact"])
  birthday: String
  location: String
  bio: String!
  followerCount: Int!
  moderationNotes: String
  posts(first: Int = 10): [Post!]! @listSize(slicingArguments: ["first"])
}

type Post implements Node {
  id: ID!
  body: String!
  createdAt: String!
  location: String
  author: User
  comments: [Comment!]! @listSize(assumedSize: 5)
}

type Comment implements Node {
  id: ID!
  body: String!
  author: User
}

union SearchResult = User | Post

type UpdateProfilePayload { user: User }

type Query {
  users(first: Int = 10, after: String): [User!]! @listSize(slicingArguments: ["first"])
  user(id: ID!): User
  node(id: ID!): Node
  search(text: String!, first: Int = 10): [SearchResult!]! @cost(weight: "2")
  me: User
  usersAsync(first: Int = 10): [User!]!
}

type Mutation { updateProfile(displayName: String!): UpdateProfilePayload! }

type Subscription { profiles(first: Int = 3): User }
'''

_TYPES = {data.User: "User", data.Post: "Post", data.Comment: "Comment"}


def _attribute(name: str) -> Any:
    get = attrgetter(name)
    return lambda obj, _info: get(obj)


def _type_of(obj: Any, *_: Any) -> str | None:
    return _TYPES.get(type(obj))


def _world(info: Any) -> data.Store:
    return info.context.world  # type: ignore[no-any-return]


def _me(info: Any) -> data.User | None:
    subject = info.context.caller.subject.id
    return None if subject is None else _world(info).user(subject)


async def _users_async(_: Any, info: Any, first: int = 10) -> list[data.User]:
    await asyncio.sleep(0)
    return _world(info).page(first)


def _update_profile(_: Any, info: Any, displayName: str) -> dict[str, Any]:
    user = _me(info)
    if user is not None:
        user.display_name = displayName
    return {"user": user}


async def _profiles(_: Any, info: Any, first: int = 3) -> AsyncIterator[data.User]:
    for user in _world(info).page(first):
        yield user


_RESOLVERS: dict[tuple[str, str], Any] = {
    ("Query", "users"): lambda _, info, first=10, after=None: _world(info).page(first, after),
    ("Query", "user"): lambda _, info, id: _world(info).user(id),
    ("Query", "node"): lambda _, info, id: _world(info).get(id),
    ("Query", "search"): lambda _, info, text, first=10: list(_world(info).search(text, first)),
    ("Query", "me"): lambda _, info: _me(info),
    ("Query", "usersAsync"): _users_async,
    ("User", "posts"): lambda u, info, first=10: _world(info).posts_of(u.id, first),
    ("Post", "author"): lambda p, info: _world(info).user(p.author_id),
    ("Post", "comments"): lambda p, info: _world(info).comments_of(p.id),
    ("Comment", "author"): lambda c, info: _world(info).user(c.author_id),
    ("Mutation", "updateProfile"): _update_profile,
    ("Subscription", "profiles"): lambda event, info, first=3: event,
}


def build_sdl_schema() -> GraphQLSchema:
    """The SDL schema with resolvers attached (attributes in snake_case)."""
    schema = build_schema(SDL)
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, gfield in type_.fields.items():
            resolver = _RESOLVERS.get((type_.name, name))
            if resolver is None and type_.name not in ("Query", "Mutation", "Subscription",
                                                       "UpdateProfilePayload"):
                resolver = _attribute(snake_case(name))
            if resolver is not None:
                gfield.resolve = resolver
    schema.get_type("Subscription").fields["profiles"].subscribe = _profiles  # type: ignore[union-attr]
    for abstract in ("Node", "SearchResult"):
        schema.get_type(abstract).resolve_type = _type_of  # type: ignore[union-attr]
    return schema
