"""SageMaker endpoint simulator: the real runtime wire protocol and container payloads, without AWS.

Entry points: ``app.create_simulator_app``, ``app.run_simulator``, ``model.SimEndpoint``,
``model.DEMO_ENDPOINTS``, ``model.endpoints_from_config`` and ``textgen.count_tokens``.
"""
