from services.stripe_sink.main import main

main()
