"""The subcommands of the ``gradlearn`` command line, one concept per file.

- :mod:`.config`: the run configuration (defaults, validation, ``config.toml`` read and write);
- :mod:`.experiment`: data, model, optimizer and schedule built from a configuration, the run
  folder, and the plots drawn from it;
- :mod:`.train`: ``gradlearn train`` and ``gradlearn resume``;
- :mod:`.runs`: ``gradlearn evaluate``, ``predict`` and ``plot`` on a run folder;
- :mod:`.diagnose`: ``gradlearn gradcheck``, ``sanity``, ``lr-find`` and ``profile``.

A mistake of the user (an unknown name, a bad value, a missing file) raises :class:`UserError`;
``gradlearn.cli.main`` prints it as ``gradlearn <command>: error: <message>`` on stderr and
exits with status 1, without a traceback.
"""


class UserError(Exception):
    """A mistake of the user's, reported as ``gradlearn <command>: error: <message>`` (exit status 1)."""
