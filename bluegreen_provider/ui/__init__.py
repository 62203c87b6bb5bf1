"""The on-call view of blue/green deployments inside the Airflow UI.

Two questions come up at 3 a.m.: *where is traffic going right now, and how do I put it back?* and
*what did this deployment run do, stage by stage?* The first is answered from AWS (the same
``service_status`` the ``bluegreen status`` CLI prints) for the services the serialized DAGs define
(:mod:`.services`), the second from Airflow's metadata DB (:mod:`.timeline`, :mod:`.charts`).
:mod:`.pages` words both for the Jinja templates in ``bluegreen_provider/templates``, :mod:`.app`
serves them, and :mod:`.plugin` registers the app and its two views with Airflow.
"""
