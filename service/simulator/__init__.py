"""SageMaker endpoint simulator: the real runtime wire protocol and container payloads, without AWS.

Entry points: ``app.create_simulator_app``, ``app.run_simulator``, ``model.SimEndpoint``,
``model.DEMO_ENDPOINTS``, ``model.endpoints_from_config`` and ``textgen.count_tokens``.

Containers (``containers/``), written from ../shared/reference, never from the gateway's adapters:
TGI (generate with ``grammar`` and images, the Messages API with tools, ``response_format``, logprobs and
images, each with its version's quirks), LMI (rolling batch ``inputs``, vLLM chat with tool parsers,
rolling batch or async mode), LMI NeuronX, the JumpStart Meta Llama and FLAN-T5 containers, and the
embedding containers (TEI, three JumpStart schemas, LMI embeddings). Every text container answers Meta's
Llama 3.x tool prompts and JSON instructions (``containers/meta_tools.py``); ``POST /_sim/faults`` can
make those answers malformed (``tool_output``).
"""
