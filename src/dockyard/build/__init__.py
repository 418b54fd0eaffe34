"""Dockerfiles and the builder.

`parse_dockerfile(text)` checks a Dockerfile (DockerfileError names the line);
`Builder(executor, cache, context_dir, options, emit).build(dockerfile)` runs it through
an `Executor` (the engine's containers and image store) and returns the image;
`DockerIgnore` decides which context files a build sees.
"""

from ._builder import Builder, BuildOptions
from ._cache import BuildCache
from ._dockerignore import DockerIgnore, read_dockerignore
from ._errors import BuildError, DockerfileError
from ._executor import BuildImage, Executor, RunMount, RunOptions
from ._instructions import Dockerfile, parse_dockerfile

__all__ = ["BuildCache", "BuildError", "BuildImage", "BuildOptions", "Builder",
           "DockerIgnore", "Dockerfile", "DockerfileError", "Executor", "RunMount",
           "RunOptions", "parse_dockerfile", "read_dockerignore"]
