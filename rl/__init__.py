"""RL agents for MFT on RLlib's new API stack (RLModule, Learner, ConnectorV2, EnvRunner).

Sub-packages:
- ``rl.models``: torch backbones (MLP, CNN, LSTM, attention), the actor-critic and Q-network
  RLModules built on them, and ``build_module_spec`` to pick one by name.
- ``rl.algorithms``: our own algorithms (A2C) and learners that add L2 weight decay to RLlib's.
"""
